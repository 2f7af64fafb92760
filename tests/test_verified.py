"""The parse-time staleness check remembers batches found complete, and still finds damage."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gradatlas.core import layout
from gradatlas.core.files import read_json, write_json_atomic
from gradatlas.run import records
from gradatlas.workflow import verified
from gradatlas.workflow.batch import run_batch


@pytest.fixture
def batch(tmp_path: Path) -> tuple[Path, Path]:
    """A manifest of two tiny trained runs, and the memo file to use."""
    study = tmp_path / "tiny.yaml"
    study.write_text(yaml.safe_dump({
        "fixed": {"model": "mlp", "depth": 2, "width": 8, "batch_size": 32, "max_steps": 2,
                  "data.n_train": 64, "data.n_test": 32},
        "grid": {"activation": ["relu", "tanh"]},
    }))
    manifest = tmp_path / "results/smoke/batches/tiny/batch-0.json"
    write_json_atomic(manifest, run_batch(str(study), "smoke", [0, 1], str(tmp_path / "results"), "cpu"))
    return manifest, tmp_path / "memo.json"


def _count_checks(monkeypatch) -> list:
    calls = []
    original = records.check_record
    monkeypatch.setattr(records, "check_record", lambda path: calls.append(path) or original(path))
    return calls


def test_a_batch_found_complete_is_not_checked_again(batch, monkeypatch):
    manifest, memo = batch
    calls = _count_checks(monkeypatch)
    assert verified.withdraw_stale([str(manifest)], [], memo) == []
    assert len(calls) == 2  # both records checked once
    assert verified.withdraw_stale([str(manifest)], [], memo) == []
    assert len(calls) == 2  # unchanged: not checked again
    assert manifest.exists()


def test_a_record_changed_after_its_check_is_found(batch):
    manifest, memo = batch
    verified.withdraw_stale([str(manifest)], [], memo)
    record = Path(read_json(manifest)["runs"][1]["path"])
    layers = record / layout.LAYERS_FILE
    layers.write_bytes(layers.read_bytes()[:-10])  # damaged, e.g. a truncated copy
    messages = verified.withdraw_stale([str(manifest)], [], memo)
    assert len(messages) == 1 and "withdrawn" in messages[0]
    assert not manifest.exists()  # its batch runs again


def test_a_deleted_record_is_found(batch):
    manifest, memo = batch
    verified.withdraw_stale([str(manifest)], [], memo)
    record = Path(read_json(manifest)["runs"][0]["path"])
    for path in record.iterdir():
        path.unlink()
    record.rmdir()
    assert verified.signature(manifest) is None
    assert verified.withdraw_stale([str(manifest)], [], memo)
    assert not manifest.exists()


def test_a_missing_manifest_withdraws_the_summaries(batch, tmp_path):
    manifest, memo = batch
    summary = tmp_path / "results/smoke/summary/runs.parquet"
    summary.parent.mkdir(parents=True)
    summary.write_bytes(b"stand-in")
    missing = str(manifest.with_name("batch-1.json"))
    assert verified.withdraw_stale([str(manifest), missing], [str(summary)], memo)
    assert not summary.exists() and manifest.exists()

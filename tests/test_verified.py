"""The parse-time staleness check remembers batches found complete, still finds damage, and changes
no file of the results."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from gradatlas.core import layout
from gradatlas.core.files import read_json, write_json_atomic
from gradatlas.run import records
from gradatlas.workflow import verified
from gradatlas.workflow.batch import run_batch

pytestmark = pytest.mark.unit


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


def _tree(root: Path) -> dict[str, tuple[int, int, bytes]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def _record(manifest: Path, index: int) -> Path:
    return manifest.parents[2] / read_json(manifest)["runs"][index]["path"]


def test_a_batch_found_complete_is_not_checked_again(batch, monkeypatch):
    manifest, memo = batch
    calls = _count_checks(monkeypatch)
    assert verified.stale_batches([str(manifest)], memo) == {}
    assert len(calls) == 2  # both records checked once
    assert verified.stale_batches([str(manifest)], memo) == {}
    assert len(calls) == 2  # unchanged: not checked again
    assert manifest.exists()


def test_without_remember_the_memo_is_not_written(batch, monkeypatch):
    manifest, memo = batch
    calls = _count_checks(monkeypatch)
    assert verified.stale_batches([str(manifest)], memo, remember=False) == {}
    assert not memo.exists()
    assert verified.stale_batches([str(manifest)], memo) == {}
    assert len(calls) == 4  # nothing remembered by the first check


def test_a_record_changed_after_its_check_is_found_and_nothing_changes(batch, tmp_path):
    manifest, memo = batch
    verified.stale_batches([str(manifest)], memo)
    layers = _record(manifest, 1) / layout.LAYERS_FILE
    layers.write_bytes(layers.read_bytes()[:-10])  # damaged, e.g. a truncated copy
    before = _tree(tmp_path / "results")
    stale = verified.stale_batches([str(manifest)], memo)
    assert list(stale) == [str(manifest)] and str(layers) in stale[str(manifest)][0]
    assert _tree(tmp_path / "results") == before  # found, not withdrawn: the workflow forces its job


def test_a_deleted_record_is_found(batch):
    manifest, memo = batch
    verified.stale_batches([str(manifest)], memo)
    record = _record(manifest, 0)
    for path in record.iterdir():
        path.unlink()
    record.rmdir()
    assert verified.signature(manifest) is None
    assert list(verified.stale_batches([str(manifest)], memo)) == [str(manifest)]
    assert manifest.exists()


def test_a_missing_manifest_is_not_stale(batch):
    manifest, memo = batch
    assert verified.stale_batches([str(manifest), str(manifest.with_name("batch-1.json"))], memo) == {}


def test_a_copied_scale_is_checked_on_its_own_records(batch, tmp_path):
    manifest, memo = batch
    assert verified.stale_batches([str(manifest)], memo) == {}
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "results", copy / "results", copy_function=shutil.copy2)  # mtimes kept
    copied = copy / manifest.relative_to(tmp_path)
    assert verified.signature(copied) == verified.signature(manifest)  # same names, sizes, mtimes
    layers = _record(copied, 0) / layout.LAYERS_FILE
    os.truncate(layers, 10)
    assert list(verified.stale_batches([str(copied)], memo)) == [str(copied)]
    assert verified.stale_batches([str(manifest)], memo) == {}  # the original's records are whole

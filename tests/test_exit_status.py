"""Exit statuses of the command-line tools (``core.exit_status``): 2 for bad input, 1 for a
failure of the work (here: a full disk), each with a one-line message and nothing half-written."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY_MLP

from gradatlas.analysis import claim_index, commands
from gradatlas.core.exit_status import EXIT_BAD_INPUT, EXIT_FAILED
from gradatlas.run import rerun, train
from gradatlas.workflow import aggregate, archive, batch, extend, plan, verify

pytestmark = pytest.mark.unit

TUNED_STUDY = Path(__file__).resolve().parents[1] / "conf" / "studies" / "silu_relu.yaml"
STUDY = "fixed: {model: mlp, width: 8, depth: 2, max_steps: 2, data.n_train: 128, data.n_test: 64, batch_size: 32}\n" \
        "grid: {activation: [relu]}\n"


def _train_cli(argv: list[str], monkeypatch) -> int:
    """``python -m gradatlas.run.train ARGV`` in this process; its exit status."""
    monkeypatch.setattr(sys, "argv", ["gradatlas.run.train", *argv])
    monkeypatch.setattr(train, "_task_started", False)
    with pytest.raises(SystemExit) as done:
        train.cli()
        raise SystemExit(0)
    return done.value.code or 0


def _bad_inputs(tmp: Path) -> dict[str, callable]:
    """Each command line with input it must refuse."""
    missing = tmp / "missing"
    corrupt = tmp / "corrupt.json"
    corrupt.write_text("{not json")
    bad_study = tmp / "bad.yaml"
    bad_study.write_text("grid: {activation: [relu]}\nscales: {smoke: {seeds: 0}}\n")
    manifest = tmp / "results/smoke/batches/bad/batch-0.json"
    return {
        "train": lambda mp: _train_cli(["optim.momentum=2", f"out={tmp / 'run'}"], mp),
        "train-unknown-key": lambda mp: _train_cli(["model.dropout=0.5", f"out={tmp / 'run'}"], mp),
        "rerun": lambda mp: rerun.main([str(missing), str(tmp / "new")]),
        "batch": lambda mp: batch.main([str(bad_study), "--scale", "smoke", "--runs", "0", "--manifest", str(manifest)]),
        "aggregate": lambda mp: aggregate.main(["--manifests", str(corrupt), *(f"--{t}={tmp / t}.parquet"
                                                for t in ("runs", "layers", "timesteps", "steps"))]),
        "archive": lambda mp: archive.main(["check", "--archive", str(missing)]),
        "plan": lambda mp: plan.main(["--scale", "smoke", "--workflow-config", str(missing / "workflow.yaml")]),
        "extend": lambda mp: extend.main([str(TUNED_STUDY), "--scale", "smoke", "--manifests", str(corrupt),
                                          "--out", str(tmp / "tuning.json"),
                                          "--manifest", str(tmp / "results/smoke/batches/silu_relu/extend-0.json")]),
        "verify": lambda mp: verify.main(["tex", "--report", str(corrupt), "--out", str(tmp / "verify.tex")]),
        "analysis": lambda mp: commands.main(["ledger", "--root", str(missing / "smoke"), "--studies", "selu"]),
        "claim_index": lambda mp: claim_index.main([str(missing / "README.md"), "--check"]),
    }


# What each message must name.
NAMED = {"train": "optim.momentum must be in [0, 1)", "train-unknown-key": "model.dropout", "rerun": "missing",
         "batch": "scales.smoke.seeds", "aggregate": "corrupt.json", "archive": "missing", "plan": "workflow.yaml",
         "extend": "corrupt.json", "verify": "corrupt.json", "analysis": "missing", "claim_index": "README.md"}
CASES = ["aggregate", "analysis", "archive", "batch", "claim_index", "extend", "plan", "rerun", "train",
         "train-unknown-key", "verify"]


def test_every_command_line_tool_has_a_bad_input_case(tmp_path):
    assert sorted(_bad_inputs(tmp_path)) == CASES


@pytest.mark.parametrize("tool", CASES)
def test_bad_input_exits_2_with_a_one_line_error_writing_nothing(tool, tmp_path, monkeypatch, capsys):
    call = _bad_inputs(tmp_path)[tool]
    before = set(tmp_path.rglob("*"))
    status = call(monkeypatch)
    err = capsys.readouterr().err
    assert status == EXIT_BAD_INPUT, err
    assert NAMED[tool] in err, err
    if tool != "train-unknown-key":  # Hydra reports a key it cannot compose on lines of its own
        assert len(err.strip().splitlines()) == 1 and "error: " in err, err
    assert set(tmp_path.rglob("*")) == before, "bad input wrote something"


def _disk_full(monkeypatch) -> None:
    """Every parquet and text write fails as on a full disk."""
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    monkeypatch.setattr(Path, "write_text", full)


def test_a_full_disk_ends_a_run_with_one_line_status_1_and_no_record(tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs" / "run"
    _train_cli([*TINY_MLP, f"out={out}"], monkeypatch)  # the data set cached before the disk fills
    capsys.readouterr()
    out = tmp_path / "runs" / "again"
    _disk_full(monkeypatch)
    status = _train_cli([*TINY_MLP, f"out={out}"], monkeypatch)
    err = capsys.readouterr().err
    assert status == EXIT_FAILED
    assert err.strip().splitlines() == [f"gradatlas.run.train: error: run {out} failed: [Errno 28] No space left on device"]
    assert not out.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["run"], "a temporary was left"


def test_a_full_disk_fails_a_batch_with_status_1_leaving_no_manifest_and_no_record(tmp_path, monkeypatch, capsys):
    study = tmp_path / "tiny.yaml"
    study.write_text(STUDY)
    manifest = tmp_path / "results/smoke/batches/tiny/batch-0.json"
    _disk_full(monkeypatch)
    status = batch.main([str(study), "--scale", "smoke", "--runs", "0", "--manifest", str(manifest), "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == EXIT_FAILED
    assert f"cannot write {manifest}: [Errno 28] No space left on device" in err
    assert not manifest.parent.exists() or not any(manifest.parent.iterdir())
    runs = tmp_path / "results/smoke/runs/tiny"
    assert not any(p.name in ("run.json", "config.yaml") or ".tmp-" in p.name for p in runs.rglob("*"))


def test_a_batch_whose_records_cannot_be_written_lists_them_failed(tmp_path, monkeypatch):
    study = tmp_path / "tiny.yaml"
    study.write_text(STUDY)
    manifest = tmp_path / "results/smoke/batches/tiny/batch-0.json"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)  # records only: the manifest is JSON
    status = batch.main([str(study), "--scale", "smoke", "--runs", "0", "--manifest", str(manifest), "--device", "cpu"])
    assert status == EXIT_FAILED
    entries = json.loads(manifest.read_text())["runs"]
    assert [e["status"] for e in entries] == ["failed"]
    assert not Path(entries[0]["path"]).exists()

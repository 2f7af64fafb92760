"""Record safety: what a record may replace, one writer at a time, completeness, repair."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gradatlas.core import layout
from gradatlas.core.files import RecordError, TargetError, sha256, write_json_atomic
from gradatlas.run import records
from gradatlas.workflow.batch import run_batch
from gradatlas.workflow.manifests import load_batches, manifest_problems, record_path
from gradatlas.workflow.studies import load_study

FP = "0123456789abcdef"


def _record_args(fingerprint: str = FP, model: str = "mlp", timesteps: bool = False) -> dict:
    steps = [{"step": s, "epoch": 0, "loss": 1.0 / (s + 1), "grad_norm": 2.0, "clipped": False, "lr": 0.1,
              "test_loss": math.nan, "test_metric": math.nan} for s in range(3)]
    layers = [(0, layer, f"hidden.{layer}", "backprop_norm", 0.5 * layer) for layer in range(4)]
    ts = [(0, t, "hidden_grad_norm", 0.25 * t) for t in range(1, 6)] if timesteps else None
    config = {"model": {"name": model}, "data": {}, "optim": {}, "train": {}, "probe": {}, "seed": 0, "out": "x"}
    info = {"status": "ok", "fingerprint": fingerprint, "factors": {"model": model}}
    return {"config": config, "info": info, "step_rows": steps,
            "layer_rows": layers, "timestep_rows": ts}


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- what out= may replace


def test_a_directory_that_is_not_a_record_is_left_untouched(tmp_path):
    victim = tmp_path / "victim"
    (victim / ".git").mkdir(parents=True)
    (victim / "notes.txt").write_text("precious")
    (victim / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    before = _tree(victim)
    with pytest.raises(RecordError, match="not part of a run record"):
        records.write_run_record(victim, **_record_args())
    assert _tree(victim) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim"]


def test_a_file_at_out_is_left_untouched(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    with pytest.raises(RecordError, match="not a run-record directory"):
        records.write_run_record(victim, **_record_args())
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim"]


def test_a_record_of_another_config_needs_overwrite(tmp_path):
    out = records.write_run_record(tmp_path / "run", **_record_args("a" * 16))
    before = _tree(out)
    with pytest.raises(RecordError, match="overwrite=true"):
        records.write_run_record(out, **_record_args("b" * 16))
    assert _tree(out) == before
    records.write_run_record(out, **_record_args("b" * 16), overwrite=True)
    assert records.check_record(out)["fingerprint"] == "b" * 16
    # the same config is rewritten without overwrite, as before
    records.write_run_record(out, **_record_args("b" * 16))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_damaged_record_is_replaced_only_with_overwrite(tmp_path):
    out = records.write_run_record(tmp_path / "run", **_record_args())
    (out / layout.INFO_FILE).write_text("{garbage")
    with pytest.raises(TargetError, match="damaged"):
        records.check_target(out, FP)
    records.write_run_record(out, **_record_args(), overwrite=True)
    assert records.is_complete(out)
    # a directory holding only a file named config.yaml that is not a run config is not ours
    other = tmp_path / "other"
    other.mkdir()
    (other / layout.CONFIG_FILE).write_text("lr: 3\n")
    with pytest.raises(TargetError, match="not a run record"):
        records.check_target(other, FP, overwrite=True)


# --------------------------------------------------------------------------- completeness


DAMAGE = {
    "truncated-layers": lambda out: os.truncate(out / layout.LAYERS_FILE, 100),
    "garbage-run-json": lambda out: (out / layout.INFO_FILE).write_text("garbage"),
    "deleted-steps": lambda out: (out / layout.STEPS_FILE).unlink(),
    "deleted-config": lambda out: (out / layout.CONFIG_FILE).unlink(),
    "deleted-timesteps": lambda out: (out / layout.TIMESTEPS_FILE).unlink(),
    "flipped-byte": lambda out: _flip_a_byte(out / layout.STEPS_FILE),
    "old-schema": lambda out: _drop_files_list(out),
}


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))


def _drop_files_list(out: Path) -> None:
    info = json.loads((out / layout.INFO_FILE).read_text())
    del info["files"]
    (out / layout.INFO_FILE).write_text(json.dumps(info))


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_record_is_incomplete_and_unreadable(tmp_path, damage):
    out = records.write_run_record(tmp_path / "run", **_record_args(model="gru", timesteps=True))
    assert records.is_complete(out)
    DAMAGE[damage](out)
    assert not records.is_complete(out)
    with pytest.raises(RecordError) as err:
        records.read_run_record(out)
    assert str(out) in str(err.value)


def test_a_recurrent_record_without_timesteps_is_incomplete(tmp_path):
    # written by a (buggy) writer that left the recurrent model's timesteps table out
    out = records.write_run_record(tmp_path / "run", **_record_args(model="lstm", timesteps=False))
    assert not records.is_complete(out)
    with pytest.raises(RecordError, match="timesteps.parquet"):
        records.read_run_record(out)
    feed_forward = records.write_run_record(tmp_path / "mlp", **_record_args(model="mlp", timesteps=False))
    assert records.is_complete(feed_forward)
    # a record whose run.json names no factors: its config.yaml says which model it is
    args = _record_args(model="gru", timesteps=False)
    del args["info"]["factors"]
    assert not records.is_complete(records.write_run_record(tmp_path / "no-factors", **args))


def test_run_json_states_the_row_counts(tmp_path):
    out = records.write_run_record(tmp_path / "run", **_record_args(model="gru", timesteps=True))
    files = records.check_record(out)["files"]
    assert {name: entry.get("rows") for name, entry in files.items()} == {
        layout.CONFIG_FILE: None, layout.STEPS_FILE: 3, layout.LAYERS_FILE: 4, layout.TIMESTEPS_FILE: 5}
    # a table of another length that is still a valid parquet file: the count is checked
    frame = pd.read_parquet(out / layout.STEPS_FILE).iloc[:2]
    frame.to_parquet(out / layout.STEPS_FILE, index=False)
    info = json.loads((out / layout.INFO_FILE).read_text())
    info["files"][layout.STEPS_FILE]["sha256"] = sha256(out / layout.STEPS_FILE)
    (out / layout.INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(RecordError, match="2 rows, run.json states 3"):
        records.check_record(out)


def _manifest(tmp_path: Path, outs: list[Path]) -> Path:
    """A batch manifest of the scale rooted at ``tmp_path`` (``<root>/batches/<study>/batch-0.json``)."""
    entries = [{"path": out.relative_to(tmp_path).as_posix(), "study": "s", "cell": out.name, "seed": 0,
                "fingerprint": FP} for out in outs]
    return write_json_atomic(tmp_path / "batches" / "s" / "batch-0.json", {"runs": entries})


def test_aggregation_refuses_an_incomplete_record(tmp_path):
    outs = [records.write_run_record(tmp_path / "runs" / name, **_record_args(model="gru", timesteps=True))
            for name in ("a", "b")]
    manifest = _manifest(tmp_path, outs)
    assert len(load_batches([str(manifest)])) == 2
    (outs[1] / layout.TIMESTEPS_FILE).unlink()
    with pytest.raises(RecordError, match=str(outs[1] / layout.TIMESTEPS_FILE)):
        load_batches([str(manifest)])


def test_a_stale_manifest_is_found_and_nothing_is_removed(tmp_path):
    outs = [records.write_run_record(tmp_path / "runs" / name, **_record_args()) for name in ("a", "b")]
    manifest = _manifest(tmp_path, outs)
    assert manifest_problems(manifest) == []  # all complete
    os.truncate(outs[0] / layout.LAYERS_FILE, 10)
    problems = manifest_problems(manifest)
    assert len(problems) == 1 and str(outs[0] / layout.LAYERS_FILE) in problems[0]
    # finding is all it does: the manifest and both records stay
    assert manifest.exists() and all(out.exists() for out in outs)


def test_a_manifest_names_its_records_relative_to_its_scale(tmp_path):
    outs = [records.write_run_record(tmp_path / "old" / "smoke" / "runs" / name, **_record_args()) for name in ("a", "b")]
    manifest = _manifest(tmp_path / "old" / "smoke", outs)
    assert [e["path"] for e in json.loads(manifest.read_text())["runs"]] == ["runs/a", "runs/b"]
    # the scale moved: its manifest now names the records at the new place, none at the old
    moved = tmp_path / "new" / "smoke"
    moved.parent.mkdir()
    (tmp_path / "old" / "smoke").rename(moved)
    moved_manifest = moved / "batches" / "s" / "batch-0.json"
    assert [record.info["fingerprint"] for _, record in load_batches([str(moved_manifest)])] == [FP, FP]
    assert record_path(moved_manifest, {"path": "runs/a"}) == moved.resolve() / "runs" / "a"
    assert manifest_problems(moved_manifest) == []


@pytest.mark.parametrize("path", ["/elsewhere/smoke/runs/a", "runs/../../other/smoke/runs/a"], ids=["absolute", "leaves"])
def test_a_manifest_entry_outside_its_scale_is_refused(tmp_path, path):
    outs = [records.write_run_record(tmp_path / "runs" / "a", **_record_args())]
    manifest = _manifest(tmp_path, outs)
    content = json.loads(manifest.read_text())
    content["runs"][0]["path"] = path
    manifest.write_text(json.dumps(content))
    with pytest.raises(RecordError, match="not relative to its scale"):
        load_batches([str(manifest)])
    assert len(manifest_problems(manifest)) == 1  # an older manifest: its batch trains again


# --------------------------------------------------------------------------- the batch repairs, inside runs/

TINY_STUDY = {
    "description": "tiny",
    "fixed": {"model": "mlp", "depth": 2, "width": 4, "max_steps": 2, "batch_size": 32,
              "data.n_train": 128, "data.n_test": 64},
    "grid": {"activation": ["relu", "tanh"]},
}


def test_the_batch_retrains_damaged_records_and_reuses_complete_ones(tmp_path):
    study = tmp_path / "tiny.yaml"
    study.write_text(yaml.safe_dump(TINY_STUDY))
    results = tmp_path / "results"
    first = run_batch(str(study), "smoke", [0, 1], str(results), "cpu")
    assert [e["trained"] for e in first["runs"]] == [True, True]
    assert [e["path"] for e in first["runs"]] == [f"runs/{run.relpath}" for run in load_study(study, "smoke").runs]
    damaged = results / "smoke" / first["runs"][0]["path"]
    os.truncate(damaged / layout.LAYERS_FILE, 50)
    second = run_batch(str(study), "smoke", [0, 1], str(results), "cpu")
    assert [e["trained"] for e in second["runs"]] == [True, False]
    assert all(records.is_complete(results / "smoke" / e["path"]) for e in second["runs"])


def test_a_path_valued_grid_factor_stays_inside_runs(tmp_path):
    study = tmp_path / "escape.yaml"
    outside = tmp_path / "outside"
    # a free-string key set by a study; its values become part of the cell name
    study.write_text(yaml.safe_dump({**TINY_STUDY, "grid": {"data.cache_dir": ["../../../../outside",
                                                                                str(outside / "cache")]}}))
    runs = load_study(study, "smoke").runs
    for run in runs:
        assert ".." not in run.relpath.split("/") and "//" not in run.relpath
        assert all(layout.path_token(part) == part for part in run.relpath.split("/"))
    results = tmp_path / "results"
    manifest = run_batch(str(study), "smoke", [1], str(results), "cpu")
    record = results / "smoke" / manifest["runs"][0]["path"]
    assert record.resolve().is_relative_to((results / "smoke" / "runs").resolve())
    assert records.is_complete(record)
    assert not any(p.name == "seed-0" for p in outside.rglob("*"))


def test_run_dir_refuses_a_path_that_leaves_runs(tmp_path):
    for relpath in ("s/../../x/seed-0", "s//seed-0", "s/a b/seed-0", "/abs/seed-0"):
        with pytest.raises(TargetError, match="plain"):
            layout.run_dir(tmp_path, "smoke", relpath)
    assert layout.run_dir(tmp_path, "smoke", "s/gain-1.0/seed-0") == tmp_path / "smoke/runs/s/gain-1.0/seed-0"


# --------------------------------------------------------------------------- one writer at a time


def _write_many(out: str, count: int, fingerprint: str, barrier) -> int:
    barrier.wait()
    failed = 0
    for _ in range(count):
        try:
            records.write_run_record(out, **_record_args(fingerprint))
        except Exception:  # noqa: BLE001 - counted: the test expects none
            failed += 1
    return failed


def test_concurrent_writers_of_one_record_all_succeed(tmp_path):
    out = tmp_path / "run"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(2)
        with ctx.Pool(2) as pool:
            failures = pool.starmap(_write_many, [(str(out), 60, FP, barrier), (str(out), 60, FP, barrier)])
    assert failures == [0, 0]
    assert records.is_complete(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary, no lock file left


def test_orphaned_temporaries_are_swept_other_names_kept(tmp_path):
    out = tmp_path / "run"
    orphan = tmp_path / ".run.tmp-999999-deadbeef"
    old = tmp_path / ".run.old-0badcafe"
    old.mkdir()
    orphan.mkdir()
    (orphan / layout.STEPS_FILE).write_text("half-written")
    other = tmp_path / ".other.tmp-1-cafe"  # another record's temporary
    other.mkdir()
    records.write_run_record(out, **_record_args())
    assert not orphan.exists() and not old.exists() and other.exists()
    # a name that is not one of ours stays
    mine = tmp_path / ".run.tmp-notes"
    mine.mkdir()
    with records.record_lock(out):
        pass
    assert mine.exists()


def test_a_held_lock_makes_a_second_run_fail_at_once(tmp_path):
    out = tmp_path / "run"
    ctx = multiprocessing.get_context("spawn")
    with records.record_lock(out):
        with ctx.Pool(1) as pool:
            message = pool.apply(_try_lock, (str(out),))
    assert f"pid {os.getpid()}" in message
    with records.record_lock(out, wait=False):  # released: free again
        pass
    assert list(tmp_path.iterdir()) == []


def _try_lock(out: str) -> str:
    try:
        with records.record_lock(out, wait=False):
            return "acquired"
    except records.RecordBusy as err:
        return str(err)


def test_a_manifest_names_records_relative_to_the_scale_through_links(tmp_path):
    """runs/ linked to another disk: the record is still named relative to the scale, and the
    scale of a manifest under a linked batches/ is where the link is, not where it points."""
    scale = tmp_path / "res" / "quick"
    (tmp_path / "scratch" / "runs").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    scale.mkdir(parents=True)
    (scale / "runs").symlink_to(tmp_path / "scratch" / "runs")
    (scale / "batches").symlink_to(tmp_path / "elsewhere")
    paths = layout.ScalePaths(tmp_path / "res", "quick")
    assert paths.relative(scale / "runs" / "s" / "seed-0") == "runs/s/seed-0"
    with pytest.raises(ValueError, match="not under"):
        paths.relative(tmp_path / "scratch" / "runs" / "s" / "seed-0")
    assert layout.ScalePaths.of_manifest(scale / "batches" / "s" / "batch-0.json") == paths

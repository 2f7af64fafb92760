"""Repair of a finished scale: a dry run or a report changes no file of it, and a copied scale
repairs its own records, not the original's (Snakemake at the smoke scale, in scratch copies of
the session's smoke workdir)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from workflow_helpers import snakemake

from gradatlas.core import layout
from gradatlas.run import records

pytestmark = pytest.mark.workflow

ARGS = ("--cores", "2", "--config", "scale=smoke")


def _tree(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under ``root``: size, modification time (ns) and SHA-256."""
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns,
                                             hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


def _copy(smoke: Path, to: Path) -> Path:
    """The whole smoke workdir copied (modification times kept); the fixture's stays as it is."""
    shutil.copytree(smoke, to, symlinks=True)
    return to


def _smallest_batches(scale: Path, n: int) -> list[Path]:
    """The ``n`` training batches (not sweeps) with the fewest runs."""
    manifests = sorted((scale / "batches").glob("*/batch-*.json"),
                       key=lambda m: (len(json.loads(m.read_text())["runs"]), str(m)))
    return manifests[:n]


def _damage(manifest: Path) -> Path:
    """Truncate a table of the manifest's first record; returns the record."""
    record = manifest.parents[2] / json.loads(manifest.read_text())["runs"][0]["path"]
    table = record / layout.LAYERS_FILE
    os.truncate(table, table.stat().st_size // 2)
    assert not records.is_complete(record)
    return record


def _same_record(record: Path, reference: Path) -> None:
    assert sorted(p.name for p in record.iterdir()) == sorted(p.name for p in reference.iterdir())
    for table in layout.TABLE_FILES:
        if (reference / table).exists():
            assert (record / table).read_bytes() == (reference / table).read_bytes(), table


def _runs(scale: Path) -> pd.DataFrame:
    """The runs table without what a retraining may change: its time, and the commit it ran at."""
    runs = pd.read_parquet(scale / "summary/runs.parquet").drop(columns=["wall_time_s", "git_commit"])
    return runs.sort_values("run").reset_index(drop=True)


def test_a_dry_run_and_a_report_change_no_file_then_a_plain_run_repairs(smoke: Path, tmp_path: Path):
    workdir = _copy(smoke, tmp_path / "work")
    scale = workdir / "results/smoke"
    [manifest] = _smallest_batches(scale, 1)
    record = _damage(manifest)
    before = _tree(scale)

    dry = snakemake(workdir, *ARGS, "-n")
    assert _tree(scale) == before, "a dry run changed the results"
    output = dry.stdout + dry.stderr
    assert f"{manifest.relative_to(workdir)}: its batch trains again" in output
    assert "Forced execution" in output and "aggregate" in output  # the dry run shows what reruns
    snakemake(workdir, "--report", "report.html", "--config", "scale=smoke")
    assert _tree(scale) == before, "--report changed the results"

    snakemake(workdir, *ARGS)
    _same_record(record, smoke / "results/smoke" / record.relative_to(scale))
    trained = {e["path"]: e["trained"] for e in json.loads(manifest.read_text())["runs"]}
    assert trained[record.relative_to(scale).as_posix()] is True
    pd.testing.assert_frame_equal(_runs(scale), _runs(smoke / "results/smoke"))
    assert "Nothing to be done" in (lambda p: p.stdout + p.stderr)(snakemake(workdir, *ARGS, "-n"))


def test_a_copied_scale_repairs_its_own_records_and_leaves_the_original(smoke: Path, tmp_path: Path):
    original = smoke / "results/smoke"
    untouched = _tree(original)
    workdir = _copy(smoke, tmp_path / "elsewhere" / "copy")
    scale = workdir / "results/smoke"
    damaged_manifest, lost_manifest = _smallest_batches(scale, 2)
    record = _damage(damaged_manifest)
    lost_manifest.unlink()  # a lost manifest is remade too, though the summary is up to date

    snakemake(workdir, *ARGS)
    _same_record(record, original / record.relative_to(scale))
    assert lost_manifest.exists()
    retrained = [e["path"] for m in (damaged_manifest, lost_manifest)
                 for e in json.loads(m.read_text())["runs"] if e["trained"]]
    assert record.relative_to(scale).as_posix() in retrained
    pd.testing.assert_frame_equal(_runs(scale), _runs(original))
    assert _tree(original) == untouched, "the copy's rerun changed the original"


def test_a_damaged_extension_run_makes_the_tune_job_train_it_again(smoke: Path, tmp_path: Path):
    # The tune job trains the sweep runs beyond a list's end (gradatlas.workflow.extend) and lists
    # them in batches/<study>/extend-0.json, which the workflow checks like any batch manifest.
    workdir = _copy(smoke, tmp_path / "work")
    scale = workdir / "results/smoke"
    extended = [m for m in sorted((scale / "batches").glob("*/extend-0.json")) if json.loads(m.read_text())["runs"]]
    assert extended, "no smoke cell extended its candidate list"
    manifest = extended[0]
    study = manifest.parent.name
    record = _damage(manifest)
    assert "/sweep/" in record.as_posix()
    tuning = (scale / "tuning" / f"{study}.json").read_text()

    dry = snakemake(workdir, *ARGS, "-n")
    output = dry.stdout + dry.stderr
    assert f"{manifest.relative_to(workdir)}: its batch trains again" in output and "tune" in output

    snakemake(workdir, *ARGS)
    _same_record(record, smoke / "results/smoke" / record.relative_to(scale))
    trained = {e["path"]: e["trained"] for e in json.loads(manifest.read_text())["runs"]}
    assert trained[record.relative_to(scale).as_posix()] is True
    assert (scale / "tuning" / f"{study}.json").read_text() == tuning
    pd.testing.assert_frame_equal(_runs(scale), _runs(smoke / "results/smoke"))

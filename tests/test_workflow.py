"""The Snakemake workflow, run for real at the smoke scale in a scratch copy of the repository."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gradatlas import aggregate, records
from gradatlas.studies import load_study
from workflow_helpers import make_workdir, snakemake, workflow_env

pytestmark = pytest.mark.integration


def test_smoke_runs_table_matches_records(smoke: Path):
    runs = pd.read_parquet(smoke / "results/smoke/summary/runs.parquet")
    planned = {
        f"{run.study}/{run.cell}/seed-{run.seed}"
        for f in sorted((smoke / "conf/studies").glob("*.yaml"))
        for run in load_study(f, "smoke").runs
    }
    assert set(runs["run"]) == planned
    assert len(runs) == len(planned)
    for row in runs.itertuples():
        info = json.loads((smoke / "results/smoke/runs" / row.run / "run.json").read_text())
        assert row.status == info["status"]
        assert row.depth == info["factors"]["depth"]
        assert row.activation == info["factors"]["activation"]
        if info["test_metric"] is None:
            assert pd.isna(row.test_metric)
        else:
            assert row.test_metric == pytest.approx(info["test_metric"])


def test_smoke_long_tables_match_records(smoke: Path):
    runs = pd.read_parquet(smoke / "results/smoke/summary/runs.parquet")
    layers = pd.read_parquet(smoke / "results/smoke/summary/layers.parquet")
    timesteps = pd.read_parquet(smoke / "results/smoke/summary/timesteps.parquet")
    for run in runs["run"]:
        record = records.read_run_record(smoke / "results/smoke/runs" / run)
        mine = layers[layers["run"] == run].sort_values(["step", "layer", "quantity"]).reset_index(drop=True)
        theirs = record.layers.sort_values(["step", "layer", "quantity"]).reset_index(drop=True)
        assert len(mine) == len(theirs)
        assert (mine["value"].to_numpy() == theirs["value"].to_numpy()).all() or mine["value"].equals(theirs["value"])
        if record.timesteps is not None:
            assert (timesteps["run"] == run).sum() == len(record.timesteps)
    # grid factors travel with every long row
    sample = layers.iloc[0]
    row = runs.set_index("run").loc[sample["run"]]
    assert sample["activation"] == row["activation"] and sample["depth"] == row["depth"]


def test_rerun_is_a_no_op(smoke: Path):
    proc = snakemake(smoke, "--cores", "2", "--config", "scale=smoke", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def _edit_study(workdir: Path, name: str, edit) -> None:
    path = workdir / "conf/studies" / f"{name}.yaml"
    study = yaml.safe_load(path.read_text())
    edit(study)
    path.write_text(yaml.safe_dump(study))


def test_adding_a_grid_value_trains_only_new_cells(tmp_path: Path):
    workdir = make_workdir(tmp_path)
    args = ("--cores", "2", "--config", "scale=smoke", "studies=[selu]")
    snakemake(workdir, *args)
    runs_dir = workdir / "results/smoke/runs/selu"
    before = {p.parent.parent.name: p.stat().st_mtime_ns for p in runs_dir.glob("*/seed-0/run.json")}
    assert set(before) == {"activation-selu", "activation-relu"}

    _edit_study(workdir, "selu", lambda s: s["scales"]["smoke"]["grid"].update(activation=["selu", "relu", "tanh"]))
    snakemake(workdir, *args)
    after = {p.parent.parent.name: p.stat().st_mtime_ns for p in runs_dir.glob("*/seed-0/run.json")}
    assert set(after) == {"activation-selu", "activation-relu", "activation-tanh"}
    assert all(after[cell] == before[cell] for cell in before), "existing runs were retrained"
    manifest = json.loads((workdir / "results/smoke/batches/selu/batch-0.json").read_text())
    trained = {Path(e["path"]).parent.name: e["trained"] for e in manifest["runs"]}
    assert trained == {"activation-selu": False, "activation-relu": False, "activation-tanh": True}
    runs = pd.read_parquet(workdir / "results/smoke/summary/runs.parquet")
    assert sorted(runs["activation"]) == ["relu", "selu", "tanh"]


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda s: s["grid"].update(colour=["red"]), "colour"),
        (lambda s: s["grid"].update(activation=["selu", "sigmoidd"]), "sigmoidd"),
        (lambda s: s.update(grid={}) or s["scales"]["smoke"].pop("grid"), "grid is empty"),
        (lambda s: s["scales"]["smoke"].update(seeds=0), "seeds"),
    ],
    ids=["unknown-factor", "unknown-value", "empty-grid", "zero-seeds"],
)
def test_bad_study_fails_at_parse_time(tmp_path: Path, edit, key: str):
    workdir = make_workdir(tmp_path)
    _edit_study(workdir, "selu", edit)
    proc = snakemake(workdir, "-n", "--config", "scale=smoke", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "selu.yaml" in output and key in output
    assert not (workdir / "results").exists()


def test_corrupt_record_fails_aggregation_naming_the_file(smoke: Path, tmp_path: Path, capsys):
    manifests = sorted(str(p) for p in (smoke / "results/smoke/batches").glob("*/*.json"))
    victim_manifest = json.loads(Path(manifests[0]).read_text())
    victim = Path(victim_manifest["runs"][0]["path"]) / "run.json"
    original = victim.read_text()
    try:
        victim.write_text("{not json")
        status = aggregate.main(["--manifests", *manifests, "--runs", str(tmp_path / "r.parquet"),
                                 "--layers", str(tmp_path / "l.parquet"), "--timesteps", str(tmp_path / "t.parquet")])
        assert status != 0
        assert str(victim) in capsys.readouterr().err
        assert not (tmp_path / "r.parquet").exists()
    finally:
        victim.write_text(original)


def test_kill_9_then_rerun_incomplete_finishes(tmp_path: Path):
    workdir = make_workdir(tmp_path)
    # A study large enough to be killed mid-way: the smoke meanfield grid, more steps.
    _edit_study(workdir, "silu_relu", lambda s: s["scales"]["smoke"].update(seeds=6, fixed={
        "width": 32, "max_steps": 60, "data.n_train": 512, "data.n_test": 128}))
    env = workflow_env(workdir)
    args = [sys.executable, "-m", "snakemake", "--cores", "1", "--config", "scale=smoke", "studies=[silu_relu]"]
    proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    runs_dir = workdir / "results/smoke/runs/silu_relu"
    deadline = time.time() + 180
    while time.time() < deadline and len(list(runs_dir.glob("*/seed-*/run.json"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(runs_dir.glob("*/seed-*/run.json")))
    assert 2 <= done_before < 12, "the kill should land mid-batch"
    assert not (workdir / "results/smoke/summary/runs.parquet").exists()

    # kill -9 leaves Snakemake's lock behind; --unlock is the documented way to drop it.
    snakemake(workdir, "--unlock", "--config", "scale=smoke", "studies=[silu_relu]")
    snakemake(workdir, "--cores", "2", "--config", "scale=smoke", "studies=[silu_relu]", "--rerun-incomplete")
    runs = pd.read_parquet(workdir / "results/smoke/summary/runs.parquet")
    assert len(runs) == 12 and set(runs["status"]) == {"ok"}
    manifest = json.loads((workdir / "results/smoke/batches/silu_relu/batch-0.json").read_text())
    assert sum(not e["trained"] for e in manifest["runs"]) >= done_before - 1
    for run in runs["run"]:
        records.read_run_record(workdir / "results/smoke/runs" / run)


def test_smoke_paper_is_complete(smoke: Path):
    """Every section, figure and table; no undefined reference or citation; no Type 3 font."""
    pdf = smoke / "results/smoke/paper.pdf"
    log = (smoke / "results/smoke/latex/main.log").read_text(errors="replace")
    assert "undefined" not in log.lower()
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "??" not in text
    for heading in ("Introduction", "Setup", "Depth, activation", "Initialization scale", "Normalization",
                    "Residual connections", "Exploding gradients", "Gradients through time", "Activations",
                    "Mean-field theory", "The claims, checked", "Reproducibility"):
        assert heading in text, heading
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "Type 3" not in fonts
    # 12 figures, 13 study tables + grid + claims
    assert len(set(re.findall(r"Figure (\d+):", text))) == 12
    # the claims table lists all 15 claims, each with a verdict
    claims = pd.read_parquet(smoke / "results/smoke/analysis/claims.parquet")
    assert sorted(claims["claim"]) == list(range(1, 16))
    assert set(claims["verdict"]) <= {"supported", "contradicted", "inconclusive", "no data at this scale"}
    claims_tex = (smoke / "results/smoke/tables/claims.tex").read_text()
    for verdict in claims["verdict"]:
        assert verdict in claims_tex


def test_report_has_figures_and_captions(smoke: Path):
    snakemake(smoke, "--report", "report.html", "--config", "scale=smoke")
    html = (smoke / "report.html").read_text(errors="replace")
    assert "learned negative slope" in html  # a figure caption from report/figures/
    assert "theory_vs_measurement.pdf" in html and "claims.tex" in html

"""The Snakemake workflow, run for real at the smoke scale in a scratch copy of the repository."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from workflow_helpers import make_workdir, snakemake, workflow_env

from gradatlas.analysis.figures import FIGURES
from gradatlas.analysis.claims import CLAIMS, VERDICTS
from gradatlas.run import records
from gradatlas.workflow import aggregate
from gradatlas.workflow.manifests import record_path
from gradatlas.workflow.studies import load_study

pytestmark = pytest.mark.workflow


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
        (lambda s: s.update(grid={}) or s["scales"]["smoke"].pop("grid"), "a study needs at least one factor"),
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
    victim = record_path(manifests[0], victim_manifest["runs"][0]) / "run.json"
    original = victim.read_text()
    try:
        victim.write_text("{not json")
        status = aggregate.main(["--manifests", *manifests, "--runs", str(tmp_path / "r.parquet"),
                                 "--layers", str(tmp_path / "l.parquet"), "--timesteps", str(tmp_path / "t.parquet"),
                                 "--steps", str(tmp_path / "s.parquet")])
        assert status != 0
        assert str(victim) in capsys.readouterr().err
        assert not (tmp_path / "r.parquet").exists()
    finally:
        victim.write_text(original)


def _untuned_silu_relu(study: dict) -> None:
    """silu_relu at one learning rate (no sweep before its batch) and more, longer runs."""
    study.pop("tune")
    study["fixed"].pop("data.n_val")
    study["fixed"]["lr"] = 0.001
    study["scales"]["smoke"].update(seeds=6, fixed={"width": 32, "max_steps": 60, "data.n_train": 512,
                                                    "data.n_test": 128})


def test_kill_9_then_rerun_incomplete_finishes(tmp_path: Path):
    workdir = make_workdir(tmp_path)
    # A study large enough to be killed mid-way: the smoke meanfield grid, more steps.
    _edit_study(workdir, "silu_relu", _untuned_silu_relu)
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
    finished = [json.loads(p.read_text())["stack"] for p in runs_dir.glob("*/seed-*/run.json")]
    done_before = len(finished)
    assert 2 <= done_before < 12, "the kill should land mid-batch"
    # A stack is reused whole or retrained whole (gradatlas.workflow.batch): the runs of the stacks
    # whose every member had finished are the ones a rerun must not train again.
    members = Counter(stack["id"] for stack in finished)
    whole = sum(n for sid, n in members.items() if n == next(s["size"] for s in finished if s["id"] == sid))
    assert not (workdir / "results/smoke/summary/runs.parquet").exists()

    # kill -9 leaves Snakemake's lock behind; --unlock is the documented way to drop it.
    snakemake(workdir, "--unlock", "--config", "scale=smoke", "studies=[silu_relu]")
    snakemake(workdir, "--cores", "2", "--config", "scale=smoke", "studies=[silu_relu]", "--rerun-incomplete")
    runs = pd.read_parquet(workdir / "results/smoke/summary/runs.parquet")
    assert len(runs) == 12 and set(runs["status"]) == {"ok"}
    manifest = json.loads((workdir / "results/smoke/batches/silu_relu/batch-0.json").read_text())
    assert sum(not e["trained"] for e in manifest["runs"]) >= whole
    for run in runs["run"]:
        records.read_run_record(workdir / "results/smoke/runs" / run)


def test_smoke_paper_is_complete(smoke: Path):
    """Every section, figure and table; no undefined reference or citation; no Type 3 font."""
    pdf = smoke / "results/smoke/paper.pdf"
    log = (smoke / "results/smoke/latex/main.log").read_text(errors="replace")
    assert "undefined" not in log.lower()
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "??" not in text
    for heading in ("Introduction", "The claims at a glance", "Related work", "Setup", "The verdict protocol",
                    "Depth, activation", "Initialization scale", "Normalization", "Residual connections",
                    "Exploding gradients", "Gradients through time", "Activations", "Signal-propagation theory",
                    "Discussion", "Limitations", "Reproducibility", "Every part of every claim",
                    "The studies, cell by cell"):
        assert heading in text, heading
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "Type 3" not in fonts
    # every registered figure is numbered (one float each; a caption line can be merged with the
    # other column by pdftotext, so the numbers are read from every mention, none undefined)
    assert max(int(n) for n in re.findall(r"Figure (\d+)", text)) == len(FIGURES)
    # the claims table lists every registered claim, each with a verdict
    claims = pd.read_parquet(smoke / "results/smoke/analysis/claims.parquet")
    assert sorted(claims["claim"]) == sorted(CLAIMS)
    assert set(claims["verdict"]) <= set(VERDICTS)  # "inconclusive (unstable)" included
    decided = claims[claims["verdict"] != "no data at this scale"]
    assert decided["stability"].between(0, 1).all() and decided["deciding"].str.len().gt(0).all()
    claims_tex = (smoke / "results/smoke/tables/claims.tex").read_text()
    for verdict in claims["verdict"]:
        assert verdict in claims_tex


def test_report_has_figures_and_captions(smoke: Path):
    snakemake(smoke, "--report", "report.html", "--config", "scale=smoke")
    html = (smoke / "report.html").read_text(errors="replace")
    assert "learned negative slope" in html  # a figure caption from report/figures/
    assert "theory_vs_measurement.pdf" in html and "claims.tex" in html


# --------------------------------------------------------------------------- shells, paths, repair


@pytest.mark.parametrize("name", ["x$(touch PWNED)", "my study"])
def test_a_study_file_name_is_checked_before_any_job(tmp_path: Path, name: str):
    workdir = make_workdir(tmp_path)
    shutil.copy(workdir / "conf/studies/selu.yaml", workdir / "conf/studies" / f"{name}.yaml")
    proc = snakemake(workdir, "--cores", "2", "--config", "scale=smoke", "studies=[selu]", "--until", "ledger",
                     check=False)
    output = proc.stdout + proc.stderr
    assert not list(workdir.rglob("PWNED")), "the file name ran as shell code"
    assert proc.returncode != 0 and not (workdir / "results").exists()
    assert f"{name}.yaml" in output and "[A-Za-z0-9_]+" in output


def test_a_results_root_with_spaces_works(tmp_path: Path):
    workdir = make_workdir(tmp_path)
    root = workdir / "my results"
    snakemake(workdir, "--cores", "2", "--config", "scale=smoke", "studies=[selu]", f"results={root}")
    runs = pd.read_parquet(root / "smoke/summary/runs.parquet")
    assert len(runs) == 2 and set(runs["status"]) == {"ok"}
    assert (root / "smoke/paper.pdf").stat().st_size > 10_000
    assert sorted(p.name for p in workdir.iterdir() if not p.name.startswith(".")) == sorted(
        ["Snakefile", "rules", "conf", "environment.yml", "profiles", "paper", "report", "my results"])


# Studies of the fault-injection test: 19 runs in 4 batches, recurrent models among them.
FAULT_STUDIES = ("clipping_rnn", "depth_activation_init", "linear_step", "memory")
TABLES = ("steps.parquet", "layers.parquet", "timesteps.parquet")


def _planned(workdir: Path, studies) -> set[str]:
    return {run.relpath for name in studies for run in load_study(workdir / "conf/studies" / f"{name}.yaml", "smoke").runs}


def _run_until_killed(workdir: Path, args: list[str], ready, delay: float) -> bool:
    """Start the workflow, wait until ``ready()``, then ``delay`` seconds, then kill -9 all of it.
    Returns whether it was still running when killed."""
    proc = subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=workflow_env(workdir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    time.sleep(delay)
    running = proc.poll() is None
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:  # it had ended, and its jobs with it
        pass
    proc.wait()
    return running


def _corrupt(rng: random.Random, runs_dir: Path, count: int, spared: set[str]) -> list[tuple[str, str]]:
    """Damage ``count`` records (not in ``spared``): truncate a table, garbage in run.json, or
    delete a file. One fault per record, so that each is still recognizably a record."""
    candidates = sorted(str(p.parent.relative_to(runs_dir)) for p in runs_dir.glob("**/seed-*/run.json"))
    done = []
    for relpath in rng.sample([c for c in candidates if c not in spared], count):
        record = runs_dir / relpath
        fault = rng.choice(["truncate", "garbage", "delete"])
        if fault == "truncate":
            table = record / rng.choice([t for t in TABLES if (record / t).exists()])
            os.truncate(table, rng.randrange(1, table.stat().st_size))
        elif fault == "garbage":
            (record / "run.json").write_bytes(rng.randbytes(rng.randrange(1, 200)))
        else:
            rng.choice(sorted(record.iterdir())).unlink()
        spared.add(relpath)
        done.append((relpath, fault))
    return done


def _info(record: Path) -> dict:
    info = json.loads((record / "run.json").read_text())
    info.pop("wall_time_s")
    info.pop("files", None)  # states config.yaml's checksum, which names the record's own path
    return info


def _long_table(path: Path, runs: set[str]) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    frame = frame[frame["run"].astype(str).isin(runs)]
    frame = frame.astype({c: "object" for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)})
    return frame.sort_values([c for c in ("run", "step", "layer", "t", "quantity") if c in frame]).reset_index(drop=True)


def test_kill_9_and_damaged_records_then_a_plain_rerun_repairs_bit_for_bit(smoke: Path, tmp_path: Path):
    """Fault injection: kill -9 at seeded random moments (two while training, one while the
    paper is built) and damage random records in between; after `snakemake --unlock` and a
    plain rerun every planned run has a complete record equal to an undisturbed run's."""
    rng = random.Random(8)
    workdir = make_workdir(tmp_path)
    config = ["--config", "scale=smoke", f"studies=[{','.join(FAULT_STUDIES)}]"]
    args = ["--cores", "2", *config]
    planned = _planned(workdir, FAULT_STUDIES)
    runs_dir = workdir / "results/smoke/runs"
    summary = workdir / "results/smoke/summary"
    damaged: list[tuple[str, str]] = []
    spared: set[str] = set()

    def records_written() -> int:
        return len(list(runs_dir.glob("**/seed-*/run.json")))

    for threshold in sorted(rng.sample(range(2, len(planned) - 2), 2)):
        assert _run_until_killed(workdir, args, lambda: records_written() >= threshold, rng.uniform(0, 1.0))
        snakemake(workdir, "--unlock", *config)
        damaged += _corrupt(rng, runs_dir, 2, spared)
    _run_until_killed(workdir, args, lambda: (summary / "runs.parquet").exists(), rng.uniform(0, 5))
    snakemake(workdir, "--unlock", *config)
    assert records_written() >= len(planned) - 4
    damaged += _corrupt(rng, runs_dir, 3, spared)
    assert {fault for _, fault in damaged} == {"truncate", "garbage", "delete"}, damaged

    snakemake(workdir, *args)  # plain: no --rerun-incomplete, no --forcerun

    reference = smoke / "results/smoke/runs"
    for relpath in sorted(planned):
        record, undisturbed = runs_dir / relpath, reference / relpath
        names = sorted(p.name for p in record.iterdir())
        assert names == sorted(p.name for p in undisturbed.iterdir()), relpath
        for table in TABLES:
            if (record / table).exists():
                assert (record / table).read_bytes() == (undisturbed / table).read_bytes(), (relpath, table)
        assert _info(record) == _info(undisturbed), relpath
    leftovers = [p for p in runs_dir.rglob(".*")]
    assert leftovers == [], leftovers  # no temporary, no old record, no lock file

    runs = pd.read_parquet(summary / "runs.parquet")  # a run's id is its record's path under runs/
    assert len(runs) == len(planned) and set(runs["run"]) == planned
    expected = pd.read_parquet(smoke / "results/smoke/summary/runs.parquet")
    expected = expected[expected["run"].isin(planned)]
    pd.testing.assert_frame_equal(runs.drop(columns="wall_time_s").sort_values("run").reset_index(drop=True),
                                  expected.drop(columns="wall_time_s").sort_values("run").reset_index(drop=True))
    for table in ("layers", "timesteps"):
        pd.testing.assert_frame_equal(_long_table(summary / f"{table}.parquet", planned),
                                      _long_table(smoke / f"results/smoke/summary/{table}.parquet", planned))
    assert (workdir / "results/smoke/paper.pdf").exists()

"""The archive of a scale: packed with a manifest, checked, rebuilt without training, and
verified by retraining a sample (gradatlas.workflow.archive, gradatlas.workflow.verify, rules/archive.smk)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from workflow_helpers import REPO, make_workdir, snakemake

from gradatlas.workflow import archive, verify


def _copy_scale(smoke: Path, dest: Path, scale: str = "smoke") -> Path:
    """A workdir holding a copy of the smoke scale's products (never the session's own)."""
    workdir = make_workdir(dest)
    shutil.copytree(smoke / "results" / scale, workdir / "results" / scale, symlinks=True)
    return workdir


@pytest.fixture(scope="module")
def archived(smoke, tmp_path_factory) -> Path:
    """A workdir whose smoke scale was packed by the workflow's `archive` target."""
    workdir = _copy_scale(smoke, tmp_path_factory.mktemp("archived"))
    proc = snakemake(workdir, "archive", "--cores", "2", "--config", "scale=smoke")
    assert "rule train" not in proc.stdout + proc.stderr  # the records were complete: packed as they were
    return workdir


@pytest.mark.workflow
def test_pack_lists_every_product_with_its_hash_and_provenance(archived: Path):
    store = archived / "results/smoke/archive"
    manifest = json.loads((store / "manifest.json").read_text())
    files = manifest["files"]
    for name in ("summary/runs.parquet", "summary/steps.parquet", "paper.pdf", "numbers.tex", "tables/claims.tex",
                 "analysis/claims.parquet", "figures/backprop_norm_vs_layer.pdf",
                 "figures/backprop_norm_vs_layer.png"):
        assert name in files, name
    assert not any(name.startswith("runs/") or name.startswith("batches/") for name in files)
    for name, entry in files.items():
        assert archive.sha256(store / name) == entry["sha256"]
        assert (store / name).stat().st_size == entry["bytes"]
    info = manifest["provenance"]
    runs = pd.read_parquet(store / "summary/runs.parquet")
    assert info["runs"]["total"] == len(runs) == sum(v for k, v in info["runs"].items() if k != "total")
    assert info["packages"]["torch"] and info["cpu_model"] and info["python"]
    assert info["wall_seconds"] > 0 and info["plan_estimate"].startswith("total: ")
    assert archive.check(store) == []


@pytest.mark.workflow
def test_check_and_restore_refuse_a_damaged_archive(archived: Path, tmp_path: Path):
    store = tmp_path / "archive"
    shutil.copytree(archived / "results/smoke/archive", store)
    with open(store / "summary/runs.parquet", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\0garbage\0")
    assert any("summary/runs.parquet" in p for p in archive.check(store))
    with pytest.raises(archive.ArchiveError, match="damaged"):
        archive.restore(store, "summary/runs.parquet", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
    assert archive.main(["check", "--archive", str(store)]) == 1


@pytest.mark.workflow
def test_pack_refuses_to_replace_a_directory_with_files_it_did_not_make(archived: Path, tmp_path: Path):
    root = archived / "results/smoke"
    store = tmp_path / "archive"
    shutil.copytree(root / "archive", store)
    (store / "notes.txt").write_text("mine")
    with pytest.raises(archive.ArchiveError, match="did not make"):
        archive.pack(root, store)
    assert (store / "notes.txt").read_text() == "mine"
    (store / "notes.txt").unlink()
    # an archive of its own is replaced; a wall time given by hand says how it was measured
    manifest = archive.pack(root, store, wall_seconds=12.5, wall_from="two commands, summed")
    assert manifest["provenance"]["wall_seconds"] == 12.5
    assert manifest["provenance"]["wall_from"] == "two commands, summed"
    assert archive.check(store) == []


@pytest.mark.workflow
def test_pack_refuses_more_than_the_size_limit(archived: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_BYTES", 1000)
    with pytest.raises(archive.ArchiveError, match="MiB"):
        archive.pack(archived / "results/smoke", tmp_path / "archive")
    assert not (tmp_path / "archive").exists()


@pytest.fixture(scope="module")
def rebuilt(archived: Path, tmp_path_factory) -> tuple[Path, str]:
    """A fresh workdir holding only the archive (as a clone does), rebuilt by a plain run."""
    workdir = make_workdir(tmp_path_factory.mktemp("rebuilt"))
    shutil.copytree(archived / "results/smoke/archive", workdir / "results/smoke/archive")
    proc = snakemake(workdir, "--cores", "2", "--config", "scale=smoke")
    return workdir, proc.stdout + proc.stderr


@pytest.mark.workflow
def test_a_clone_with_the_archive_rebuilds_the_paper_without_training(rebuilt, archived: Path):
    workdir, log = rebuilt
    root = workdir / "results/smoke"
    assert "rule train" not in log and "rule aggregate" not in log
    assert not (root / "runs").exists() and not (root / "batches").exists()
    report = json.loads((root / "regenerated.json").read_text())
    assert report["ok"] and not report["differ"] and not report["missing"]
    assert "tables/claims.tex" in report["equal"] and "numbers.tex" in report["equal"]
    assert (root / "paper.pdf").stat().st_size > 10_000
    for name in ("tables/claims.tex", "numbers.tex"):
        assert (root / name).read_bytes() == (archived / "results/smoke" / name).read_bytes()


@pytest.mark.workflow
def test_a_rebuild_that_differs_from_the_archive_fails(rebuilt, tmp_path: Path):
    workdir, _ = rebuilt
    root = tmp_path / "smoke"
    shutil.copytree(workdir / "results/smoke", root, ignore=shutil.ignore_patterns("archive"))
    text = (root / "numbers.tex").read_text()
    (root / "numbers.tex").write_text(text.replace(r"\newcommand{\GANumRuns}", r"\newcommand{\GANumRunsX}"))
    out = tmp_path / "report.json"
    assert archive.main(["compare", "--archive", str(workdir / "results/smoke/archive"), "--root", str(root),
                         "--out", str(out)]) == 1
    assert json.loads(out.read_text())["differ"] == ["numbers.tex"]


@pytest.mark.workflow
def test_retrain_true_trains_although_an_archive_exists(archived: Path):
    proc = snakemake(archived, "-n", "--forceall", "--cores", "2", "--config", "scale=smoke", "retrain=true")
    assert "train" in proc.stdout and "restore_summary" not in proc.stdout


@pytest.mark.workflow
def test_verify_retrains_a_sample_with_its_stacks_and_finds_it_identical(rebuilt):
    workdir, _ = rebuilt
    proc = snakemake(workdir, "verify", "--cores", "2", "--config", "scale=smoke", "verify=3", "verify_seed=1")
    assert proc.returncode == 0
    report = json.loads((workdir / "results/smoke/verify/report-3-seed1.json").read_text())
    assert len(report["sampled_runs"]) == 3 and report["retrained_runs"] >= 3
    assert report["step0_ok"] and report["same_machine_kind"]
    assert report["identical"] == report["retrained_runs"], report["runs"]
    assert all(row["values"] > 10 for row in report["runs"])
    assert (workdir / "results/smoke/archive/verify.json").exists()
    assert (workdir / "results/smoke/verify/report-3-seed1.md").read_text().startswith("# Verification")
    # The next rebuild's paper quotes it.
    snakemake(workdir, "--cores", "2", "--config", "scale=smoke")
    assert r"\newcommand{\GAVerified}{yes}" in (workdir / "results/smoke/verification.tex").read_text()


# ---------------------------------------------------------------------------------------
# The comparison itself, on cases where it must fail.

def test_relative_difference_counts_nan_and_inf_as_equal_only_to_themselves():
    a = np.array([1.0, 1.0, np.nan, np.nan, np.inf, 0.0, 0.0])
    b = np.array([1.0, 1.0 + 1e-6, np.nan, 1.0, np.inf, 0.0, 1e-30])
    rel = verify.relative_difference(a, b)
    assert rel[0] == 0 and rel[1] == pytest.approx(1e-6, rel=1e-3) and rel[2] == 0
    assert rel[3] == np.inf and rel[4] == 0 and rel[5] == 0 and rel[6] == 1.0


def test_a_cancelled_mean_is_compared_against_the_activations_spread():
    archived, retrained = _frames(0.5, 2.3), _frames(0.5, 2.3)
    for frames, mean in ((archived, 5.240163858388769e-11), (retrained, 5.243272482857719e-11)):  # measured
        extra = pd.DataFrame({"run": ["s/c/seed-0"] * 2, "step": [0, 0], "layer": [3, 3], "name": ["l3", "l3"],
                              "quantity": ["act_mean", "act_std"], "value": [mean, 0.25]})
        frames["layers"] = pd.concat([frames["layers"], extra], ignore_index=True)
    result = verify.compare_runs(archived, retrained)
    assert result["step0_ok"].all() and result["step0_max_rel"].iloc[0] < 1e-9
    # ... but a mean that moved by a share of the spread still fails.
    retrained["layers"].loc[retrained["layers"]["quantity"] == "act_mean", "value"] = 0.01
    assert not verify.compare_runs(archived, retrained)["step0_ok"].all()


def _frames(value: float, step0: float, final: float = 2.0):
    runs = pd.DataFrame({"run": ["s/c/seed-0"], "status": ["ok"], "first_loss": [step0], "initial_grad_norm": [1.0],
                         "final_train_loss": [final]})
    layers = pd.DataFrame({"run": ["s/c/seed-0"] * 2, "step": [0, 10], "layer": [0, 0], "name": ["l0", "l0"],
                           "quantity": ["grad_norm"] * 2, "value": [value, value]})
    timesteps = pd.DataFrame(columns=["run", "step", "t", "quantity", "value"])
    return {"runs": runs, "layers": layers, "timesteps": timesteps}


def test_compare_runs_passes_equal_runs_and_fails_a_step0_difference():
    same = verify.compare_runs(_frames(0.5, 2.3), _frames(0.5, 2.3))
    assert same["verdict"].tolist() == ["identical"] and same["step0_ok"].all()
    later = verify.compare_runs(_frames(0.5, 2.3, final=2.0), _frames(0.5, 2.3, final=2.1))
    assert later["verdict"].tolist() == ["differs"] and later["step0_ok"].all()
    first = verify.compare_runs(_frames(0.5, 2.3), _frames(0.5, 2.3 * (1 + 1e-4)))
    assert not first["step0_ok"].all()
    probe = verify.compare_runs(_frames(0.5, 2.3), _frames(0.5 * (1 + 2e-5), 2.3))
    assert not probe["step0_ok"].all() and probe["verdict"].tolist() == ["differs"]
    tiny = verify.compare_runs(_frames(0.5, 2.3), _frames(0.5 * (1 + 1e-7), 2.3))
    assert tiny["step0_ok"].all() and tiny["verdict"].tolist() == ["within tolerance"]


def test_a_probe_row_missing_on_one_side_is_a_difference():
    old, new = _frames(0.5, 2.3), _frames(0.5, 2.3)
    new["layers"] = new["layers"].iloc[:1]
    result = verify.compare_runs(old, new)
    assert result["verdict"].tolist() == ["differs"] and result["step0_ok"].all()


def test_rows_the_new_schedule_no_longer_records_are_counted_apart_from_differences():
    old, new = _frames(0.5, 2.3), _frames(0.5, 2.3)
    old["layers"] = pd.concat([old["layers"], pd.DataFrame(
        {"run": ["s/c/seed-0"] * 3, "step": [0, 5, 10], "layer": [0, 0, 0], "name": ["l0"] * 3,
         "quantity": ["dead_frac"] * 3, "value": [0.1, 0.2, 0.3]})], ignore_index=True)
    new["layers"] = old["layers"][old["layers"]["step"] != 5]  # the new schedule skips dead_frac at step 5
    schedules = {"s/c/seed-0": {("layers", "dead_frac"): {0, 10}, ("layers", "grad_norm"): {0, 5, 10}}}
    result = verify.compare_runs(old, new, schedules)
    assert result["verdict"].tolist() == ["identical"]
    assert result["not_recorded"].tolist() == [{"layers: dead_frac": 1}]
    assert result["values"].iloc[0] == verify.compare_runs(new, new, schedules)["values"].iloc[0]
    # A row the new schedule does record, missing on one side, is still a difference...
    missing = {**new, "layers": new["layers"][new["layers"]["step"] != 10]}
    result = verify.compare_runs(old, missing, schedules)
    assert result["verdict"].tolist() == ["differs"] and result["not_recorded"].tolist() == [{"layers: dead_frac": 1}]
    # ... and so is a row only the retrained run holds.
    result = verify.compare_runs(new, old, schedules)
    assert result["verdict"].tolist() == ["differs"] and result["not_recorded"].tolist() == [{}]


def test_the_sample_is_seeded_and_takes_whole_stacks():
    runs = pd.DataFrame({"run": [f"s/c{i}/seed-0" for i in range(6)], "study": ["s"] * 6,
                         "stack_id": ["a", "a", "a", "b", "b", None], "stack_index": [0, 1, 2, 0, 1, 0]})
    chosen, stacks = verify.sample_runs(runs, 2, seed=3)
    assert chosen == verify.sample_runs(runs, 2, seed=3)[0] and len(chosen) == 2
    members = {run for stack in stacks for run in stack}
    assert set(chosen) <= members
    for stack in stacks:
        ids = set(runs.set_index("run").loc[stack, "stack_id"].fillna("alone"))
        assert len(ids) == 1
        if ids != {"alone"}:
            assert len(stack) == (runs["stack_id"] == ids.pop()).sum()


# ---------------------------------------------------------------------------------------
# The repository's own archive of the full scale.

FULL = REPO / "results/full/archive"


@pytest.mark.skipif(not (FULL / "manifest.json").exists(), reason="no archived full scale in this checkout")
def test_the_archived_full_scale_matches_its_manifest_and_size_limit():
    assert archive.check(FULL) == []
    manifest = json.loads((FULL / "manifest.json").read_text())
    assert sum(p.stat().st_size for p in FULL.rglob("*") if p.is_file()) <= archive.MAX_BYTES
    assert manifest["provenance"]["runs"]["total"] > 1000


@pytest.mark.workflow
@pytest.mark.skipif(not (FULL / "manifest.json").exists(), reason="no archived full scale in this checkout")
def test_the_full_scale_rebuilds_from_its_archive_with_equal_tables(tmp_path: Path):
    workdir = make_workdir(tmp_path)
    shutil.copytree(FULL, workdir / "results/full/archive")
    proc = snakemake(workdir, "--cores", "2", "--config", "scale=full")
    log = proc.stdout + proc.stderr
    assert "rule train" not in log and "rule aggregate" not in log
    report = json.loads((workdir / "results/full/regenerated.json").read_text())
    assert report["ok"], report
    assert len(report["equal"]) >= 15
    # The full-scale paper's typesetting: no overfull box, and the claims at a glance (the claims
    # table and the forest plot) within its first three pages.
    latex = workdir / "results/full/latex"
    assert overfull_boxes((latex / "main.log").read_text(errors="replace")) == []
    pages = label_pages((latex / "main.aux").read_text())
    assert pages["tab:claims"] <= 3 and pages["fig:forest"] <= 3, pages


def overfull_boxes(log: str) -> list[str]:
    """The LaTeX log's overfull-box warnings (each with the line it names)."""
    return [line for line in log.splitlines() if line.startswith(("Overfull \\hbox", "Overfull \\vbox"))]


def label_pages(aux: str) -> dict[str, int]:
    """Label -> the page it landed on, from the .aux file's \\newlabel{name}{{number}{page}...}."""
    import re

    return {name: int(page) for name, page in re.findall(r"\\newlabel\{([^}]*)\}\{\{[^}]*\}\{(\d+)\}", aux)}


def test_the_typesetting_checks_read_a_latex_log_and_aux_file():
    log = "Overfull \\hbox (12.3pt too wide) in paragraph at lines 3--4\nUnderfull \\hbox (badness 10000)\n"
    assert overfull_boxes(log) == ["Overfull \\hbox (12.3pt too wide) in paragraph at lines 3--4"]
    aux = "\\newlabel{tab:claims}{{1}{2}{}{table.1}{}}\n\\newlabel{fig:forest}{{2}{3}{}{figure.2}{}}\n"
    assert label_pages(aux) == {"tab:claims": 2, "fig:forest": 3}

"""The cached study plans (parse time of the workflow) and the resources the plan gives jobs."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO, make_workdir, snakemake

from gradatlas.workflow import plan_cache as plans
from gradatlas.workflow.batch import time_left
from gradatlas.workflow.studies import StudyError, batch_cost, load_study, plan_batches

CONF = REPO / "conf"


def _study(tmp_path: Path, depths=(2, 3)) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "fixed": {"model": "mlp", "width": 8, "max_steps": 20},
        "grid": {"depth": list(depths)},
        "scales": {"smoke": {"seeds": 2}},
    }))
    return path


def test_cached_plan_is_the_plan(tmp_path):
    study_file = _study(tmp_path)
    fresh = plans.study_plans([study_file], "smoke", 1e-3, CONF, tmp_path / "cache")["tiny"]
    study = load_study(study_file, "smoke")
    expected = plan_batches(study, 1e-3)
    assert fresh.batches == tuple(expected) and len(expected) > 1
    assert fresh.seconds == tuple(batch_cost(study, b) for b in expected)
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert plans.study_plans([study_file], "smoke", 1e-3, CONF, tmp_path / "cache")["tiny"] == fresh


def test_any_change_of_study_scale_or_batch_size_plans_afresh(tmp_path):
    study_file = _study(tmp_path)
    cache = tmp_path / "cache"
    first = plans.study_plans([study_file], "smoke", 1e-3, CONF, cache)["tiny"]
    other_size = plans.study_plans([study_file], "smoke", 1e6, CONF, cache)["tiny"]
    assert len(other_size.batches) == 1 != len(first.batches)
    _study(tmp_path, depths=(2, 3, 4))
    grown = plans.study_plans([study_file], "smoke", 1e6, CONF, cache)["tiny"]
    assert sum(map(len, grown.batches)) == 6
    assert len(list(cache.iterdir())) == 3


def test_code_or_config_change_changes_the_key(tmp_path):
    conf = tmp_path / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "model" / "mlp.yaml").write_text("depth: 3\n")
    before = plans._code_version(conf)
    (conf / "model" / "mlp.yaml").write_text("depth: 4\n")
    changed = plans._code_version(conf)
    assert changed != before
    (conf / "studies").mkdir()
    (conf / "studies" / "x.yaml").write_text("grid: {}\n")  # studies are keyed one by one
    assert plans._code_version(conf) == changed


def test_bad_study_fails_and_is_not_cached(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"fixed": {"model": "mlp"}, "grid": {"activation": ["relu", "softsign"]}}))
    with pytest.raises(StudyError, match="softsign"):
        plans.study_plans([bad], "smoke", 600, CONF, tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_cache_hit_imports_neither_torch_nor_hydra(tmp_path):
    study_file = _study(tmp_path)
    plans.study_plans([study_file], "smoke", 1e-3, CONF, tmp_path / "cache")
    probe = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from gradatlas.workflow.plan_cache import study_plans
        study_plans([Path({str(study_file)!r})], "smoke", 1e-3, Path({str(CONF)!r}), Path({str(tmp_path / "cache")!r}))
        print(sorted(m for m in ("torch", "hydra", "pandas") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_time_left_scales_the_estimates_by_the_measured_speed():
    assert time_left([10.0, 20.0], trained_estimate=5.0, trained_seconds=10.0) == pytest.approx(60.0)
    assert time_left([10.0], trained_estimate=0.0, trained_seconds=0.0) == pytest.approx(10.0)
    assert time_left([], trained_estimate=5.0, trained_seconds=1.0) == 0.0


def _runtimes(output: str) -> dict[str, int]:
    jobs = re.findall(r"rule train:.*?wildcards: (study=\w+, (?:part=\w+, )?batch=\d+).*?runtime=(\d+)", output, re.S)
    return {wildcards: int(minutes) for wildcards, minutes in jobs}


@pytest.mark.workflow
def test_slurm_runtime_grows_with_attempt(tmp_path):
    workdir = make_workdir(tmp_path)
    args = ("-n", "--config", "scale=smoke", "studies=[memory,selu]")
    first = _runtimes(snakemake(workdir, *args).stdout)
    second = _runtimes(snakemake(workdir, *args, "--attempt", "2").stdout)
    third = _runtimes(snakemake(workdir, *args, "--attempt", "3").stdout)
    assert len(first) == 2 and first.keys() == second.keys() == third.keys()
    for job, minutes in first.items():
        assert second[job] == 2 * minutes and third[job] == 4 * minutes

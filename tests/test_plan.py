"""The cost plan of a scale (gradatlas.workflow.plan): the schedule replay and the command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gradatlas.workflow.plan import ANALYSIS_SECONDS, Job, simulate_wall

REPO = Path(__file__).resolve().parents[1]


def test_longest_first_on_two_cores():
    jobs = [Job("s", False, t) for t in (2, 3, 2, 3, 2)]
    # 3 | 3, then 2 | 2 on both cores, then the last 2 on the first free one: 3+2+2.
    assert simulate_wall(jobs, 2) == pytest.approx(7.0)
    assert simulate_wall(jobs, 1) == pytest.approx(12.0)
    assert simulate_wall(jobs, 10) == pytest.approx(3.0)


def test_a_tuned_study_waits_for_its_sweep():
    jobs = [Job("tuned", True, 4.0), Job("tuned", False, 1.0), Job("other", False, 3.0)]
    # Core A: sweep 0-4, then the tuned job 4-5; core B: the other study 0-3.
    assert simulate_wall(jobs, 2) == pytest.approx(5.0)
    # Without the dependency the tuned job would fill core B at 3 and all end at 4.
    assert simulate_wall([Job("a", False, 4.0), Job("b", False, 1.0), Job("c", False, 3.0)], 2) == pytest.approx(4.0)


def test_a_tuned_study_waits_for_its_tune_job_which_waits_for_the_sweep():
    jobs = [Job("tuned", True, 2.0), Job("tuned", True, 2.0), Job("tuned", False, 3.0, tune=True),
            Job("tuned", False, 1.0), Job("tuned", False, 1.0), Job("other", False, 6.0)]
    # Cores A, B: sweeps 0-2; A: tune 2-5, B: other 2-8; A: the tuned jobs 5-6, 6-7; ends at 8.
    assert simulate_wall(jobs, 2) == pytest.approx(8.0)
    # One core: 2 + 2 + 3 + 1 + 1 + 6, the tune job before the other study's long job.
    assert simulate_wall(jobs, 1) == pytest.approx(15.0)
    # Many cores: sweep 2, tune 3, the tuned jobs 1: 6 (the other study alone takes 6 too).
    jobs[-1] = Job("other", False, 5.0)
    assert simulate_wall(jobs, 8) == pytest.approx(6.0)


def test_no_jobs_take_no_time():
    assert simulate_wall([], 2) == 0.0


def test_the_command_ends_with_the_total_line():
    proc = subprocess.run([sys.executable, "-m", "gradatlas.workflow.plan", "--scale", "smoke", "--cores", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    last = re.fullmatch(r"total: (\d+) runs, ([0-9.]+) core-h, (\d+) min at 2 cores \((\d+) stacks\)", lines[-1])
    assert last, lines[-1]
    studies = {line.split()[0]: line.split() for line in lines[1:-1]}
    assert set(studies) == {p.stem for p in (REPO / "conf" / "studies").glob("*.yaml")}
    assert int(last.group(1)) == sum(int(row[1]) + int(row[2]) + int(row[3]) for row in studies.values())
    assert int(last.group(4)) == sum(int(row[4]) for row in studies.values()) <= int(last.group(1))
    assert int(last.group(3)) >= ANALYSIS_SECONDS / 60


def test_bad_cores_are_refused():
    proc = subprocess.run([sys.executable, "-m", "gradatlas.workflow.plan", "--scale", "smoke", "--cores", "0"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--cores" in proc.stderr

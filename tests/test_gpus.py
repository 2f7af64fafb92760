"""Several GPUs on one machine: each training job claims its own (tested without GPUs: which
device each job was given)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from workflow_helpers import make_workdir, snakemake

from gradatlas.workflow.gpus import claim_gpu

HOLD = textwrap.dedent("""
    import sys, time
    from gradatlas.workflow.gpus import claim_gpu
    slot = claim_gpu(int(sys.argv[1]), sys.argv[2], poll_s=0.05)
    print(slot.index, flush=True)
    sys.stdin.read()  # hold the claim until the test closes stdin
""")


def _holder(count: int, lock_dir: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(count), str(lock_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    return proc, int(proc.stdout.readline())


def test_processes_get_distinct_gpus_and_wait_for_a_free_one(tmp_path):
    first, a = _holder(2, tmp_path)
    second, b = _holder(2, tmp_path)
    assert {a, b} == {0, 1}
    with pytest.raises(TimeoutError):
        claim_gpu(2, tmp_path, poll_s=0.05, timeout_s=0.3)
    first.stdin.close()  # the process ends; the kernel drops its lock
    first.wait(timeout=30)
    assert claim_gpu(2, tmp_path, poll_s=0.05, timeout_s=10).index == a
    second.stdin.close()
    second.wait(timeout=30)


def test_claim_is_held_by_the_open_slot_and_released(tmp_path):
    slot = claim_gpu(1, tmp_path)
    with pytest.raises(TimeoutError):
        claim_gpu(1, tmp_path, poll_s=0.05, timeout_s=0.2)
    slot.release()
    assert claim_gpu(1, tmp_path, timeout_s=1).index == 0
    with pytest.raises(ValueError):
        claim_gpu(0, tmp_path)


@pytest.mark.workflow
def test_one_workflow_spreads_training_jobs_over_the_gpus(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    workdir = make_workdir(tmp_path / "work")
    studies = ["selu", "init_scale", "clipping_mlp", "normalization"]
    targets = [f"results/smoke/batches/{name}/batch-0.json" for name in studies]
    env_locks = tmp_path / "locks"
    monkeypatch.setenv("GRADATLAS_GPU_LOCKS", str(env_locks))  # read by the jobs (gradatlas.workflow.gpus)
    snakemake(workdir, *targets, "--cores", "3", "--config", "scale=smoke", "gpus=2", "device=cpu")
    jobs = [json.loads((workdir / target).read_text())["gpu"] for target in targets]
    for job in jobs:
        assert job["slot"] in (0, 1) and job["of"] == 2
        assert job["CUDA_VISIBLE_DEVICES"] == str(job["slot"])  # the one device the job saw
    # Jobs that trained at the same time had different GPUs, and never more than two at once.
    for i, one in enumerate(jobs):
        overlapping = [other for other in jobs[i + 1:]
                       if other["claimed_at"] < one["released_at"] and one["claimed_at"] < other["released_at"]]
        assert all(other["slot"] != one["slot"] for other in overlapping)
    for job in jobs:
        at_once = [o for o in jobs if o["claimed_at"] <= job["claimed_at"] < o["released_at"]]
        assert len(at_once) <= 2
    assert sorted(p.name for p in env_locks.iterdir()) <= ["gpu-0.lock", "gpu-1.lock"]
    log = (workdir / "results/smoke/logs/train/selu/batch-0.log").read_text()
    assert f"GPU {jobs[0]['slot']} of 2" in log


@pytest.mark.workflow
def test_dry_run_asks_one_gpu_per_training_job(tmp_path):
    workdir = make_workdir(tmp_path)
    out = snakemake(workdir, "-n", "--config", "scale=smoke", "gpus=2", "studies=[selu]").stdout
    train = out.split("rule train:")[1].split("\n\n")[0]
    assert "gpu=1" in train
    out = snakemake(workdir, "-n", "-p", "--config", "scale=smoke", "gpus=2", "studies=[selu]").stdout
    assert "--gpus 2" in out

"""Cluster submission through snakemake-executor-plugin-slurm, on a real single-node Slurm.

`ci/setup.sh --test` installs Slurm from Debian's packages and starts it (ci/slurm/setup.sh).
Where Slurm is absent the tests skip, except under CI, where that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pandas as pd
import pytest
from workflow_helpers import make_workdir, snakemake

pytestmark = pytest.mark.workflow

# The plugin's first status poll comes after 40 s by default; a CI cluster answers at once.
FAST_POLL = ("--slurm-init-seconds-before-status-checks", "5")


def slurm_is_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and any(state.startswith(("idle", "mix", "alloc")) for state in out.stdout.split())


@pytest.fixture(scope="module")
def cluster():
    if not slurm_is_up():
        if os.environ.get("CI"):
            pytest.fail("CI: no running Slurm cluster (ci/slurm/setup.sh should have started one)")
        pytest.skip("no running Slurm cluster: run ci/slurm/setup.sh")


def test_profile_requests_one_gpu_per_training_job(cluster, tmp_path):
    workdir = make_workdir(tmp_path)
    proc = snakemake(workdir, "--workflow-profile", "profiles/slurm", "-n", "--config", "scale=smoke", timeout=300)
    out = proc.stdout + proc.stderr
    # the compute rules: training batches, and the tune jobs that train the extension runs
    for rule in ("train", "tune"):
        jobs = re.findall(rf"rule {rule}:.*?(?=\n\n|\Z)", out, re.S)
        assert jobs, (rule, out[-2000:])
        assert all(re.search(r"\bgpu=1\b", job) for job in jobs), rule
    # aggregation and the paper ask for no GPU (they run on the submitting host: see below)
    for rule in ("aggregate", "ledger", "figures", "paper"):
        blocks = re.findall(rf"rule {rule}:.*?(?=\n\n|\Z)", out, re.S)
        assert blocks and not re.search(r"\bgpu=", blocks[0]), rule


def test_smoke_through_slurm_equals_local_run(cluster, smoke, tmp_path):
    workdir = make_workdir(tmp_path)
    start = subprocess.run(["date", "+%Y-%m-%dT%H:%M:%S"], capture_output=True, text=True).stdout.strip()
    # The CI node has no GPU: drop the profile's request (this replaces its set-resources).
    snakemake(workdir, "--workflow-profile", "profiles/slurm", "--config", "scale=smoke",
              "--set-resources", "train:gpu=0", "tune:gpu=0", *FAST_POLL, timeout=1200)
    accounted = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "Comment,State", "-S", start],
                               capture_output=True, text=True, timeout=30).stdout.split()
    jobs = [line.split("|") for line in accounted if "|" in line]
    # every job that trains: a study's batches and a tuned study's sweep (rule train), and a
    # tuned study's tune job, which writes the manifest of the extension runs it trained
    manifests = list((workdir / "results/smoke/batches").glob("*/*-*.json"))
    expected = [f"rule_tune_wildcards_{m.parent.name}" if m.stem.startswith("extend-")
                else f"rule_train_wildcards_{m.parent.name}_{m.stem.replace('-', '_')}" for m in manifests]
    assert any(m.stem.startswith("extend-") for m in manifests)
    # every job that trains (and nothing else) went through sbatch, and finished
    assert sorted(comment for comment, _ in jobs) == sorted(expected)
    assert {state for _, state in jobs} == {"COMPLETED"}

    slurm = pd.read_parquet(workdir / "results/smoke/summary/runs.parquet").set_index("run").sort_index()
    local = pd.read_parquet(smoke / "results/smoke/summary/runs.parquet").set_index("run").sort_index()
    assert list(slurm.index) == list(local.index)
    for column in ("status", "diverged_step", "final_train_loss", "test_loss", "test_metric", "max_grad_norm"):
        pd.testing.assert_series_equal(slurm[column], local[column], check_names=False)
    key = ["run", "step", "layer", "quantity"]
    slurm_layers = pd.read_parquet(workdir / "results/smoke/summary/layers.parquet").sort_values(key)
    local_layers = pd.read_parquet(smoke / "results/smoke/summary/layers.parquet").sort_values(key)
    assert slurm_layers["value"].to_numpy().tobytes() == local_layers["value"].to_numpy().tobytes()
    assert (workdir / "results/smoke/paper.pdf").exists()

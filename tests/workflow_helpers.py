"""Helpers for tests that run the Snakemake workflow in a scratch copy of the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Set by conftest for the running test: the unit lane never runs the workflow.
IN_UNIT_TEST = False


def make_workdir(tmp: Path) -> Path:
    """A copy of what the workflow reads, so tests neither touch nor lock the checkout."""
    for name in ("Snakefile", "rules", "conf", "environment.yml", "profiles", "paper", "report"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, tmp / name)
        elif src.exists():
            shutil.copy(src, tmp / name)
    return tmp


def workflow_env(workdir: Path) -> dict[str, str]:
    """Environment for snakemake in ``workdir``: the copy's config dir."""
    return {**os.environ, "GRADATLAS_CONF": str(workdir / "conf")}


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir``; raise with its output if it fails and ``check``."""
    if IN_UNIT_TEST:
        raise RuntimeError("snakemake runs only in tests marked pytest.mark.workflow (tests/conftest.py)")
    proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=workflow_env(workdir),
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc

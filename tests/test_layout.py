"""The package's layout: the wings' import contracts and the names the core keeps for the registries."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gradatlas.core import names
from gradatlas.run import activations, inits

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    """`lint-imports` reads the contracts of pyproject.toml and exits non-zero on a broken one."""
    linter = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert linter, "import-linter is a test dependency (pip install -e '.[test]')"
    done = subprocess.run([linter, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BROKEN" not in done.stdout and done.stdout.count("KEPT") >= 4


def test_a_broken_contract_fails(tmp_path):
    """The check can fail: a copy of the package whose run wing imports the analysis is refused."""
    linter = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "src", copy / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    bad = copy / "src" / "gradatlas" / "run" / "records.py"
    bad.write_text(bad.read_text() + "\nfrom gradatlas.analysis import intervals  # noqa: E402,F401\n")
    env = {"PYTHONPATH": str(copy / "src"), "PATH": str(Path(sys.executable).parent)}
    done = subprocess.run([linter, "--no-cache"], cwd=copy, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode != 0
    assert "gradatlas.run.records -> gradatlas.analysis.intervals" in done.stdout


def test_registries_are_keyed_by_the_core_names():
    """config validates against the core's names; the registries build exactly those."""
    assert tuple(activations.ACTIVATIONS) == names.ACTIVATION_NAMES
    assert tuple(inits.INITIALIZERS) == names.INIT_NAMES

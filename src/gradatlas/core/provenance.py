"""Where a result was made: package versions, the commit of the source tree, the CPU."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Optional

# The packages a run's result depends on (each run record states their versions).
RUN_PACKAGES = ("torch", "numpy", "pandas", "pyarrow", "hydra-core", "omegaconf", "mnist1d", "scikit-learn")
_SOURCE = Path(__file__).resolve().parent


def package_versions(packages: tuple[str, ...], missing: Optional[str] = None) -> dict[str, Optional[str]]:
    """The installed version of each package, ``missing`` for one that is not installed."""
    found: dict[str, Optional[str]] = {}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = missing
    return found


@lru_cache(maxsize=1)
def run_versions() -> dict[str, str]:
    """Python's and ``RUN_PACKAGES``' versions, as a run record states them."""
    return {"python": platform.python_version(), **package_versions(RUN_PACKAGES, missing="absent")}  # type: ignore[dict-item]


def git(*args: str) -> str:
    """The output of ``git ARGS`` in the source tree, or ``unknown`` outside git."""
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=_SOURCE,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the source tree (with ``-dirty`` if modified), or None outside git."""
    commit = git("rev-parse", "HEAD")
    if commit == "unknown":
        return None
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return commit + ("-dirty" if dirty not in ("", "unknown") else "")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

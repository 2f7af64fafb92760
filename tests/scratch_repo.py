"""A scratch copy of the repository for tests that extend it the way a contributor would.

``ScratchRepo`` copies the package, the configuration and the documents the generated parts
read (``src/``, ``conf/``, ``report/``, ``paper/``, ``README.md``) under a temporary directory;
a test then writes only the files an extension needs (``write``, ``list_claim``) and runs
Python in a subprocess whose ``PYTHONPATH`` is the copy's ``src/`` (``run``), so the copy, not
the installed package, is imported and nothing of the real checkout changes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
ENTRIES = ("src", "conf", "report", "paper", "README.md")


class ScratchRepo:
    """A copy of ``entries`` of the repository under ``root``."""

    def __init__(self, root: Path, entries: Sequence[str] = ENTRIES) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            source = REPO / entry
            if source.is_dir():
                shutil.copytree(source, self.root / entry, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(source, self.root / entry)

    def path(self, relative: str) -> Path:
        """A path inside the copy."""
        return self.root / relative

    def write(self, relative: str, text: str) -> Path:
        """Write ``text`` to ``relative`` in the copy (a new file; an existing one is refused)."""
        target = self.path(relative)
        if target.exists():
            raise FileExistsError(f"{relative} exists in the scratch copy; edit it with a dedicated method")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return target

    def list_claim(self, study: str, claim_id: int) -> None:
        """Append ``claim_id`` to the ``claims: [...]`` line of ``conf/studies/<study>.yaml``."""
        path = self.path(f"conf/studies/{study}.yaml")
        text, count = re.subn(r"^claims: \[(.*)\]$", lambda m: f"claims: [{m.group(1)}, {claim_id}]",
                              path.read_text(), count=1, flags=re.M)
        if count != 1:
            raise ValueError(f"{path} has no 'claims: [...]' line")
        path.write_text(text)

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``python *args`` in the copy's root with the copy's package first on the path."""
        env = {**os.environ, "PYTHONPATH": str(self.root / "src"), "GRADATLAS_CONF": str(self.root / "conf")}
        done = subprocess.run([sys.executable, *args], cwd=self.root, env=env, capture_output=True, text=True,
                              timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"python {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

"""Which batches must train again, found without changing any file of the results.

Before Snakemake plans, the workflow asks which batch manifests list a record that is no
longer complete (``manifests.manifest_problems``: checksums and row counts of every file),
about 10 ms a record, seconds for the quick scale's hundreds. It changes nothing: the
workflow marks those batches' jobs for forced execution (rules/common.smk), so that a dry
run shows them and only a real run replaces their outputs. A batch found complete is
remembered with the signature of its manifest and of its records' files (name, size,
modification time, the signals Snakemake itself trusts); while the signature is unchanged
the batch is not checked again. Any write to a record or its manifest changes the
signature, so a damaged or deleted record is still found on the next parse.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from gradatlas.core.files import RecordError, write_json_atomic
from gradatlas.workflow.manifests import manifest_problems, record_path


def signature(manifest: str | os.PathLike) -> str | None:
    """Hash of the manifest's bytes and of every file (name, size, mtime) of the records it
    lists; None when the manifest or a record directory cannot be read."""
    digest = hashlib.sha256()
    try:
        content = Path(manifest).read_bytes()
        digest.update(content)
        for entry in json.loads(content)["runs"]:
            with os.scandir(record_path(manifest, entry)) as files:
                for item in sorted(files, key=lambda f: f.name):
                    stat = item.stat()
                    digest.update(f"{entry['path']}/{item.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    except (OSError, ValueError, KeyError, TypeError, RecordError):
        return None
    return digest.hexdigest()


def default_memo() -> Path:
    """``$GRADATLAS_CACHE/verified.json``, else ``.cache/gradatlas/verified.json``."""
    return Path(os.environ.get("GRADATLAS_CACHE", ".cache/gradatlas")) / "verified.json"


def _key(manifest: str | os.PathLike) -> str:
    return str(Path(manifest).resolve())


def stale_batches(manifests: list[str], memo: str | os.PathLike | None = None,
                  remember: bool = True) -> dict[str, list[str]]:
    """The manifests (of ``manifests``) that list a record no longer complete, each with its
    problems (``manifests.manifest_problems``); a missing manifest is not stale (Snakemake
    reruns its job). Only manifests not found complete since they last changed are checked:
    ``memo`` (a JSON file, ``default_memo()``) remembers those found complete, and with
    ``remember`` the ones found complete now are added to it (the memo is a cache outside
    the results)."""
    memo = default_memo() if memo is None else Path(memo)
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    present = [m for m in manifests if Path(m).exists()]
    signatures = {m: signature(m) for m in present}
    unchecked = [m for m in present if signatures[m] is None or known.get(_key(m)) != signatures[m]]
    if not unchecked:
        return {}
    stale = {}
    for manifest in unchecked:
        problems = manifest_problems(manifest)
        if problems:
            stale[manifest] = problems
            known.pop(_key(manifest), None)
        elif signatures[manifest] is not None:
            known[_key(manifest)] = signatures[manifest]
    if remember:
        write_json_atomic(memo, known)
    return stale

"""``manifests.withdraw_stale`` for the workflow's parse, skipping batches checked since they last changed.

Every Snakemake invocation checks, before it plans, that each batch manifest's records are
complete (``manifests.withdraw_stale``: checksums and row counts of every file), about 10 ms
a record, seconds for the quick scale's hundreds. A batch found complete is remembered with
the signature of its manifest and of its records' files (name, size, modification time,
the signals Snakemake itself trusts); while the signature is unchanged the batch is not
checked again. Any write to a record or its manifest changes the signature, so a damaged or
deleted record is still found on the next parse.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def signature(manifest: str | os.PathLike) -> str | None:
    """Hash of the manifest's bytes and of every file (name, size, mtime) of the records it
    lists; None when the manifest or a record directory cannot be read."""
    digest = hashlib.sha256()
    try:
        content = Path(manifest).read_bytes()
        digest.update(content)
        for entry in json.loads(content)["runs"]:
            with os.scandir(entry["path"]) as files:
                for item in sorted(files, key=lambda f: f.name):
                    stat = item.stat()
                    digest.update(f"{entry['path']}/{item.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return digest.hexdigest()


def default_memo() -> Path:
    """``$GRADATLAS_CACHE/verified.json``, else ``.cache/gradatlas/verified.json``."""
    return Path(os.environ.get("GRADATLAS_CACHE", ".cache/gradatlas")) / "verified.json"


def _key(manifest: str | os.PathLike) -> str:
    return str(Path(manifest).resolve())


def withdraw_stale(manifests: list[str], summaries: list[str], memo: str | os.PathLike | None = None) -> list[str]:
    """``manifests.withdraw_stale`` on the manifests not found complete since they last changed;
    ``memo`` (a JSON file, ``default_memo()``) remembers the signatures of those found complete."""
    memo = default_memo() if memo is None else Path(memo)
    try:
        known = json.loads(memo.read_text())
    except (OSError, ValueError):
        known = {}
    signatures = {m: signature(m) for m in manifests}
    unchecked = [m for m in manifests if signatures[m] is None or known.get(_key(m)) != signatures[m]]
    if not unchecked:
        return []
    from gradatlas.core.files import write_json_atomic  # pandas: only when something is to be checked
    from gradatlas.workflow.manifests import withdraw_stale as withdraw

    messages = withdraw(unchecked, summaries)
    for manifest in unchecked:
        if Path(manifest).exists() and signatures[manifest] is not None:
            known[_key(manifest)] = signatures[manifest]  # checked, and kept: complete
        else:
            known.pop(_key(manifest), None)
    write_json_atomic(memo, known)
    return messages

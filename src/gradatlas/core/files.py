"""Files the package writes and reads: atomic writes, checksums, JSON, parquet and text.

Every product is written to a hidden temporary sibling and renamed into place, so a reader
never sees half a file: a write that fails (a full disk) removes its temporary, and one that
is killed leaves only a ``.<name>.tmp-*`` file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any, Callable

import pandas as pd


class RecordError(RuntimeError):
    """A run record or a product file is missing, incomplete or malformed; the message names the file."""


class TargetError(RecordError):
    """A record may not be written at this path (it holds something else, or cannot be
    written); raised before anything is trained or written."""


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None: JSON has no NaN or infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _temporary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _replace_atomically(path: Path, write: Callable[[Path], Any]) -> Path:
    """``write`` a temporary beside ``path``, then rename it to ``path``; a failed write (a
    full disk, say) removes the temporary and leaves ``path`` as it was."""
    tmp = _temporary(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, content: dict[str, Any]) -> Path:
    """Write a small JSON document (a batch manifest, a summary) atomically."""
    text = json.dumps(json_safe(content), indent=2) + "\n"
    return _replace_atomically(Path(path), lambda tmp: tmp.write_text(text))


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON document, raising ``RecordError`` that names the file."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise RecordError(f"{path}: cannot read ({err})") from err


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table as parquet, atomically."""
    return _replace_atomically(Path(path), lambda tmp: frame.to_parquet(tmp, index=False))


def read_table(path: str | os.PathLike, columns: tuple[str, ...] = (), only: bool = False) -> pd.DataFrame:
    """Read a parquet table that must have ``columns`` (with ``only``: just those columns).

    Raises:
        RecordError: naming the file that is unreadable or lacks a column.
    """
    try:
        frame = pd.read_parquet(path, columns=list(columns) if only and columns else None)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise RecordError(f"{path}: cannot read table ({err})") from err
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RecordError(f"{path}: missing columns {missing}")
    return frame


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text product (LaTeX) atomically."""
    return _replace_atomically(Path(path), lambda tmp: tmp.write_text(text))

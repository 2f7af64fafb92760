"""Batch manifests: which records each training job wrote, and whether they still stand.

A manifest names its records relative to the scale's root (``layout.ScalePaths.relative``),
so a results directory that is copied or moved checks and aggregates its own records.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

from gradatlas.core.files import RecordError, read_json
from gradatlas.core.layout import INFO_FILE, ScalePaths
from gradatlas.run import records


def record_path(manifest_path: str | os.PathLike, entry: dict[str, Any]) -> Path:
    """The record directory a manifest's entry names: its ``path`` taken relative to the root
    of the manifest's scale (``ScalePaths.of_manifest``).

    Raises:
        RecordError: the entry names its record by an absolute path (a manifest written before
            manifests named records relative to their scale) or one that leaves the scale.
    """
    relpath = PurePosixPath(entry["path"])
    if relpath.is_absolute() or ".." in relpath.parts:
        raise RecordError(f"{manifest_path}: names record {entry['path']} not relative to its scale "
                          "(an older manifest)")
    return ScalePaths.of_manifest(manifest_path).resolve(relpath)


def load_batches(manifests: list[str]) -> list[tuple[dict[str, Any], records.RunRecord]]:
    """Read every run record listed in the batch manifests, in manifest order.

    Raises:
        RecordError: naming the manifest or record file that is missing or corrupt.
    """
    loaded = []
    for manifest_path in manifests:
        manifest = read_json(manifest_path)
        if "runs" not in manifest:
            raise RecordError(f"{manifest_path}: not a batch manifest (no 'runs')")
        for entry in manifest["runs"]:
            path = record_path(manifest_path, entry)
            record = records.read_run_record(path)
            if record.info.get("fingerprint") != entry.get("fingerprint"):
                raise RecordError(f"{path / INFO_FILE}: record does not match its batch "
                                  f"manifest {manifest_path} (rerun the workflow)")
            loaded.append((entry, record))
    return loaded


def manifest_problems(manifest_path: str | os.PathLike) -> list[str]:
    """Why the batch manifest at ``manifest_path`` is out of date: one line per record it lists
    that is not complete (``check_record``), not of the listed config, or not named relative
    to the scale (``record_path``). Empty when it is up to date, or absent."""
    path = Path(manifest_path)
    if not path.exists():
        return []
    try:
        entries = [(entry, entry["fingerprint"]) for entry in read_json(path)["runs"]]
    except (RecordError, KeyError, TypeError) as err:
        return [f"{path}: not a readable batch manifest ({err})"]
    problems = []
    for entry, wanted in entries:
        try:
            record = record_path(path, entry)
            info = records.check_record(record)
        except (RecordError, KeyError, TypeError) as err:
            problems.append(str(err))
            continue
        if info["fingerprint"] != wanted:
            problems.append(f"{record / INFO_FILE}: fingerprint {info['fingerprint']}, the manifest lists {wanted}")
    return problems

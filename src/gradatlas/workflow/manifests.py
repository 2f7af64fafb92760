"""Batch manifests: which records each training job wrote, and whether they still stand.

A manifest names its records relative to the scale's root, so a results directory that is
copied or moved checks and aggregates its own records.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from gradatlas.core.files import RecordError, read_json
from gradatlas.core.layout import INFO_FILE
from gradatlas.run import records


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
            record = records.read_run_record(entry["path"])
            if record.info.get("fingerprint") != entry.get("fingerprint"):
                raise RecordError(f"{Path(entry['path']) / INFO_FILE}: record does not match its batch "
                                  f"manifest {manifest_path} (rerun the workflow)")
            loaded.append((entry, record))
    return loaded


def manifest_problems(manifest_path: str | os.PathLike) -> list[str]:
    """Why the batch manifest at ``manifest_path`` is out of date: one line per record it lists
    that is not complete (``check_record``) or not of the listed config. Empty when it is up
    to date, or absent."""
    path = Path(manifest_path)
    if not path.exists():
        return []
    try:
        entries = [(entry["path"], entry["fingerprint"]) for entry in read_json(path)["runs"]]
    except (RecordError, KeyError, TypeError) as err:
        return [f"{path}: not a readable batch manifest ({err})"]
    problems = []
    for record, wanted in entries:
        try:
            info = records.check_record(record)
        except RecordError as err:
            problems.append(str(err))
            continue
        if info["fingerprint"] != wanted:
            problems.append(f"{Path(record) / INFO_FILE}: fingerprint {info['fingerprint']}, the manifest lists {wanted}")
    return problems


def withdraw_stale(manifests: list[str], summaries: list[str]) -> list[str]:
    """Make the workflow's outputs say what needs training again; returns what was withdrawn.

    A batch manifest that lists a record no longer complete (``manifest_problems``) is
    removed, so the batch runs again and retrains those runs (reusing the others). Snakemake
    regenerates a missing intermediate file only when something downstream must run, so when
    any manifest is missing the summary tables built from the manifests (``summaries``) are
    removed as well: aggregation then has to run, and needs every batch's manifest.
    """
    messages = []
    for manifest in manifests:
        problems = manifest_problems(manifest)
        if problems:
            Path(manifest).unlink(missing_ok=True)
            messages.append(f"{manifest}: withdrawn, its batch runs again ({len(problems)} record(s) not "
                            f"complete, e.g. {problems[0]})")
    missing = [m for m in manifests if not Path(m).exists()]
    present = [s for s in summaries if Path(s).exists()]
    if missing and present:
        for summary in present:
            Path(summary).unlink(missing_ok=True)
        messages.append(f"{', '.join(present)}: withdrawn, batch manifest(s) {', '.join(missing[:3])} missing")
    return messages

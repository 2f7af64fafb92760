"""The run record: writing, checking and reading it (its file names: ``gradatlas.core.layout``).

A run record is a directory holding ``config.yaml``, ``run.json``, ``steps.parquet``,
``layers.parquet`` and, for recurrent models, ``timesteps.parquet``. It is written into a
hidden temporary sibling and renamed into place, so a directory with the record's name is
always complete when written; an interrupted write leaves only a hidden ``.<name>.tmp-*``
directory. ``run.json`` states each file's SHA-256 and row count (``files``): a record is
complete (``is_complete``) only when every file of its contract matches, so a file damaged
or deleted later is found by every reader.

Safety: a writer holds an advisory lock (``fcntl.flock`` on ``.<name>.lock`` beside the
record) from its first check to its rename, so one process writes a record at a time and
the temporaries it finds are orphans. A record is only ever replaced when the directory
already is one (``check_target``); anything else at the path is refused.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import pyarrow.parquet as pq
import yaml

from gradatlas.core.files import RecordError, TargetError, json_safe, read_table, sha256
from gradatlas.core.layout import (
    CONFIG_FILE,
    INFO_FILE,
    LAYER_COLUMNS,
    LAYERS_FILE,
    RECORD_FILES,
    STEP_COLUMNS,
    STEPS_FILE,
    TABLE_FILES,
    TIMESTEP_COLUMNS,
    TIMESTEPS_FILE,
)
from gradatlas.core.names import RECURRENT_MODELS, STATUSES

# The top-level keys of a run's config.yaml: how a damaged record is told from other files.
CONFIG_KEYS = frozenset({"model", "data", "optim", "train", "probe", "seed"})
# 2: run.json states ``files`` (SHA-256 and row count of each file of the record).
SCHEMA_VERSION = 2

_STEP_DTYPES = {"step": "int64", "epoch": "int64", "loss": "float64", "grad_norm": "float64",
                "clipped": "bool", "lr": "float64", "test_loss": "float64", "test_metric": "float64"}
_LAYER_DTYPES = {"step": "int64", "layer": "int64", "name": "string", "quantity": "string", "value": "float64"}
_TIMESTEP_DTYPES = {"step": "int64", "t": "int64", "quantity": "string", "value": "float64"}


class RecordBusy(TargetError):
    """Another process holds the record's lock: it is writing the same record."""


@dataclass
class RunRecord:
    """A run record read back into memory."""

    path: Path
    config: dict[str, Any]
    info: dict[str, Any]
    steps: pd.DataFrame
    layers: pd.DataFrame
    timesteps: Optional[pd.DataFrame]


# libyaml's loader where PyYAML has it: the pure-Python one takes milliseconds per config.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_YAML_LOADER)


def _frame(rows: list, columns: tuple[str, ...], dtypes: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=list(columns)) if rows else pd.DataFrame(columns=list(columns))
    return frame.astype(dtypes)


def write_run_record(
    out: str | os.PathLike,
    config: dict[str, Any],
    info: dict[str, Any],
    step_rows: list[dict],
    layer_rows: list[tuple],
    timestep_rows: Optional[list[tuple]],
    overwrite: bool = False,
) -> Path:
    """Write a complete run record to ``out`` atomically, replacing the record there.

    Args:
        out: the record directory.
        config: the fully resolved config.
        info: the contents of ``run.json`` (must contain ``status`` and ``fingerprint``).
        step_rows: dicts with ``STEP_COLUMNS`` keys.
        layer_rows: tuples in ``LAYER_COLUMNS`` order.
        timestep_rows: tuples in ``TIMESTEP_COLUMNS`` order, or None for feed-forward models.
        overwrite: also replace a record of another config, or a damaged one (``check_target``).

    Returns:
        The record directory.

    Raises:
        TargetError: ``out`` holds something that is not a replaceable record.
    """
    if info.get("status") not in STATUSES:
        raise ValueError(f"run status must be one of {STATUSES}, got {info.get('status')!r}")
    if not isinstance(info.get("fingerprint"), str) or not info["fingerprint"]:
        raise ValueError("run.json must name the config's fingerprint")
    out = Path(out)
    with record_lock(out):
        check_target(out, info["fingerprint"], overwrite)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            (tmp / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
            tables = {STEPS_FILE: _frame(step_rows, STEP_COLUMNS, _STEP_DTYPES),
                      LAYERS_FILE: _frame(layer_rows, LAYER_COLUMNS, _LAYER_DTYPES)}
            if timestep_rows is not None:
                tables[TIMESTEPS_FILE] = _frame(timestep_rows, TIMESTEP_COLUMNS, _TIMESTEP_DTYPES)
            files = {CONFIG_FILE: {"sha256": sha256(tmp / CONFIG_FILE)}}
            for name, frame in tables.items():
                frame.to_parquet(tmp / name, index=False)
                files[name] = {"rows": len(frame), "sha256": sha256(tmp / name)}
            payload = {"schema_version": SCHEMA_VERSION, **info, "files": files}
            (tmp / INFO_FILE).write_text(json.dumps(json_safe(payload), indent=2, sort_keys=False) + "\n")
            _replace_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def _replace_dir(src: Path, dst: Path) -> None:
    # Only ever called under the record's lock, after check_target accepted ``dst``.
    if dst.exists():
        old = dst.parent / f".{dst.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


# --------------------------------------------------------------------------- who may write where

# Locks this process holds: lock path -> [file descriptor, depth]. Re-entrant, so that the
# runner can hold a record's lock for a whole run and write_run_record take it again.
_HELD: dict[str, list[int]] = {}


def _lock_path(out: Path) -> Path:
    return out.parent / f".{out.name}.lock"


@contextmanager
def record_lock(out: str | os.PathLike, wait: bool = True):
    """Hold the advisory lock of the record at ``out`` (``.<name>.lock`` beside it).

    Creates ``out``'s parent directories, so it also proves that ``out`` can be written.
    Once locked, removes the record's orphaned temporaries (``.<name>.tmp-*``, ``.<name>.old-*``):
    every writer holds the lock for as long as its temporaries exist, so their owner is gone.
    The lock file is removed on release (the inode is checked after locking, so a process
    that locked a removed file tries again).

    Raises:
        RecordBusy: ``wait`` is false and another process holds the lock.
        TargetError: the parent directory cannot be created or written.
    """
    out = Path(out)
    lock = _lock_path(out)
    key = os.path.abspath(lock)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    fd = _acquire(out, lock, wait)
    _HELD[key] = [fd, 1]
    try:
        _sweep_orphans(out)
        yield
    finally:
        del _HELD[key]
        try:
            os.unlink(lock)  # while still holding it: a waiter then finds its inode gone
        except FileNotFoundError:
            pass
        os.close(fd)


def _acquire(out: Path, lock: Path, wait: bool) -> int:
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        if not os.access(lock.parent, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except FileExistsError:  # a file where a directory of the path should be
        raise TargetError(f"{out}: cannot write its directory {lock.parent} (a file is in the way)") from None
    except OSError as err:
        raise TargetError(f"{out}: cannot write its directory {lock.parent} ({err.strerror or err})") from None
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise TargetError(f"{out}: cannot write its directory {lock.parent} ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RecordBusy(f"{out}: another process (pid {holder}) is writing this record") from None
        try:
            current = os.stat(lock)
            mine = os.fstat(fd)
            if (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed this lock file on release: lock the new one


def _sweep_orphans(out: Path) -> None:
    # Called under the record's lock: only names write_run_record and _replace_dir make.
    orphan = re.compile(re.escape(f".{out.name}.") + r"(tmp-[0-9]+-|old-)[0-9a-f]{8}")
    for entry in out.parent.iterdir():
        if orphan.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)


def check_target(out: str | os.PathLike, fingerprint: str, overwrite: bool = False) -> None:
    """Raise ``TargetError`` unless a record of config ``fingerprint`` may be written at ``out``.

    Allowed: nothing at ``out``, an empty directory, a record (its ``run.json`` names a
    fingerprint) of the same config, and with ``overwrite`` a record of another config or a
    damaged record (a directory of record files only, whose ``config.yaml`` is a run config).
    Refused: a file, a link, a directory with anything else in it.
    """
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise TargetError(f"{out}: exists and is not a run-record directory; refusing to replace it")
    if not out.exists():
        return
    entries = list(out.iterdir())
    if not entries:
        return
    foreign = sorted(e.name for e in entries if e.name not in RECORD_FILES or not e.is_file() or e.is_symlink())
    if foreign:
        raise TargetError(f"{out}: holds files that are not part of a run record ({', '.join(foreign[:5])}); "
                          "refusing to replace it")
    info = read_info(out)
    existing = info.get("fingerprint") if info else None
    if isinstance(existing, str):
        if existing != fingerprint and not overwrite:
            raise TargetError(f"{out}: holds the record of another config (fingerprint {existing}, this one "
                              f"{fingerprint}); pass overwrite=true to replace it")
        return
    if not _is_run_config(out / CONFIG_FILE):
        raise TargetError(f"{out}: is not a run record (no run.json naming a fingerprint); refusing to replace it")
    if not overwrite:
        raise TargetError(f"{out}: holds a damaged run record (no readable run.json); pass overwrite=true "
                          "to replace it")


def _is_run_config(path: Path) -> bool:
    try:
        config = _load_yaml(path)
    except (OSError, ValueError, yaml.YAMLError):
        return False
    return isinstance(config, dict) and CONFIG_KEYS <= set(config)


# --------------------------------------------------------------------------- reading


def read_run_record(path: str | os.PathLike) -> RunRecord:
    """Read a run record, checked complete (``check_record``) first.

    Raises:
        RecordError: naming the file that is missing, damaged or unreadable.
    """
    path = Path(path)
    info = check_record(path)
    config_path = path / CONFIG_FILE
    try:
        config = _load_yaml(config_path)
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise RecordError(f"{config_path}: cannot read run config ({err})") from err
    steps = read_table(path / STEPS_FILE, STEP_COLUMNS)
    layers = read_table(path / LAYERS_FILE, LAYER_COLUMNS)
    timesteps = read_table(path / TIMESTEPS_FILE, TIMESTEP_COLUMNS) if TIMESTEPS_FILE in info["files"] else None
    return RunRecord(path, config, info, steps, layers, timesteps)


def check_record(path: str | os.PathLike) -> dict[str, Any]:
    """Check that ``path`` holds a complete run record and return its ``run.json``.

    Complete: ``run.json`` is an object with a valid ``status``, a ``fingerprint`` and
    ``files``; every file of the contract (``config.yaml``, ``steps.parquet``,
    ``layers.parquet``, and ``timesteps.parquet`` for a recurrent model) is listed, present,
    has the SHA-256 stated, and each table the row count stated.

    Raises:
        RecordError: naming the file that is missing or damaged.
    """
    path = Path(path)
    info_path = path / INFO_FILE
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError) as err:  # ValueError: bad JSON, or bytes that are not UTF-8
        raise RecordError(f"{info_path}: cannot read run record ({err})") from err
    if not isinstance(info, dict):
        raise RecordError(f"{info_path}: run record must be a JSON object, got {type(info).__name__}")
    if info.get("status") not in STATUSES:
        raise RecordError(f"{info_path}: status must be one of {STATUSES}, got {info.get('status')!r}")
    files = info.get("files")
    if not isinstance(info.get("fingerprint"), str) or not isinstance(files, dict):
        raise RecordError(f"{info_path}: incomplete run record (no fingerprint or no files list; "
                          f"schema_version {info.get('schema_version')!r}, this version writes {SCHEMA_VERSION})")
    unknown = sorted(set(files) - set(RECORD_FILES) - {INFO_FILE}) + sorted({INFO_FILE} & set(files))
    if unknown:
        raise RecordError(f"{info_path}: files lists {unknown}, which are not part of a run record")
    for name in (CONFIG_FILE, STEPS_FILE, LAYERS_FILE):
        if name not in files:
            raise RecordError(f"{info_path}: files does not list {name}")
    for name, stated in files.items():
        _check_file(path / name, stated)
    if _is_recurrent(info, path / CONFIG_FILE) and TIMESTEPS_FILE not in files:
        raise RecordError(f"{path / TIMESTEPS_FILE}: missing (a recurrent model's record has one)")
    return info


def _check_file(path: Path, stated: Any) -> None:
    if not isinstance(stated, dict) or not isinstance(stated.get("sha256"), str):
        raise RecordError(f"{path}: run.json states no checksum for it")
    try:
        digest = sha256(path)
    except OSError as err:
        raise RecordError(f"{path}: missing or unreadable ({err.strerror})") from err
    if digest != stated["sha256"]:
        raise RecordError(f"{path}: damaged (its SHA-256 differs from the one run.json states)")
    if path.name in TABLE_FILES:
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except Exception as err:  # pyarrow raises several types for a damaged file
            raise RecordError(f"{path}: cannot read table ({err})") from err
        if rows != stated.get("rows"):
            raise RecordError(f"{path}: {rows} rows, run.json states {stated.get('rows')!r}")


def _is_recurrent(info: dict[str, Any], config_path: Path) -> bool:
    # run.json's factors name the model (fast: JSON); config.yaml only for a record without them.
    factors = info.get("factors")
    if isinstance(factors, dict) and "model" in factors:
        return factors["model"] in RECURRENT_MODELS
    try:
        config = _load_yaml(config_path)
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise RecordError(f"{config_path}: cannot read run config ({err})") from err
    model = config.get("model") if isinstance(config, dict) else None
    return isinstance(model, dict) and model.get("name") in RECURRENT_MODELS


def is_complete(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a complete run record (``check_record``): the one definition the
    batch's reuse check, the workflow's staleness check and aggregation share."""
    try:
        check_record(path)
    except RecordError:
        return False
    return True


def read_info(path: str | os.PathLike) -> Optional[dict[str, Any]]:
    """``run.json`` of a complete record at ``path``, or None if there is none or it is unreadable."""
    try:
        info = json.loads((Path(path) / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None



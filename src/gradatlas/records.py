"""The run record: the one owner of its paths, file names and formats.

A run record is a directory holding ``config.yaml``, ``run.json``, ``steps.parquet``,
``layers.parquet`` and, for recurrent models, ``timesteps.parquet``. It is written into a
hidden temporary sibling and renamed into place, so a directory with the record's name is
always complete; an interrupted write leaves only a hidden ``.<name>.tmp-*`` directory.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import yaml

CONFIG_FILE = "config.yaml"
INFO_FILE = "run.json"
STEPS_FILE = "steps.parquet"
LAYERS_FILE = "layers.parquet"
TIMESTEPS_FILE = "timesteps.parquet"

STEP_COLUMNS = ("step", "epoch", "loss", "grad_norm", "clipped", "lr", "test_loss", "test_metric")
LAYER_COLUMNS = ("step", "layer", "name", "quantity", "value")
TIMESTEP_COLUMNS = ("step", "t", "quantity", "value")
STATUSES = ("ok", "diverged", "failed")
SCHEMA_VERSION = 1

_STEP_DTYPES = {"step": "int64", "epoch": "int64", "loss": "float64", "grad_norm": "float64",
                "clipped": "bool", "lr": "float64", "test_loss": "float64", "test_metric": "float64"}
_LAYER_DTYPES = {"step": "int64", "layer": "int64", "name": "string", "quantity": "string", "value": "float64"}
_TIMESTEP_DTYPES = {"step": "int64", "t": "int64", "quantity": "string", "value": "float64"}


class RecordError(RuntimeError):
    """A run record is missing, incomplete or malformed; the message names the file."""


@dataclass
class RunRecord:
    """A run record read back into memory."""

    path: Path
    config: dict[str, Any]
    info: dict[str, Any]
    steps: pd.DataFrame
    layers: pd.DataFrame
    timesteps: Optional[pd.DataFrame]


def _frame(rows: list, columns: tuple[str, ...], dtypes: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=list(columns)) if rows else pd.DataFrame(columns=list(columns))
    return frame.astype(dtypes)


def _json_safe(value: Any) -> Any:
    # JSON has no NaN or infinity; a missing or non-finite number is null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_run_record(
    out: str | os.PathLike,
    config: dict[str, Any],
    info: dict[str, Any],
    step_rows: list[dict],
    layer_rows: list[tuple],
    timestep_rows: Optional[list[tuple]],
) -> Path:
    """Write a complete run record to ``out`` atomically, replacing any record there.

    Args:
        out: the record directory.
        config: the fully resolved config.
        info: the contents of ``run.json`` (must contain ``status``).
        step_rows: dicts with ``STEP_COLUMNS`` keys.
        layer_rows: tuples in ``LAYER_COLUMNS`` order.
        timestep_rows: tuples in ``TIMESTEP_COLUMNS`` order, or None for feed-forward models.

    Returns:
        The record directory.
    """
    if info.get("status") not in STATUSES:
        raise ValueError(f"run status must be one of {STATUSES}, got {info.get('status')!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        (tmp / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
        _frame(step_rows, STEP_COLUMNS, _STEP_DTYPES).to_parquet(tmp / STEPS_FILE, index=False)
        _frame(layer_rows, LAYER_COLUMNS, _LAYER_DTYPES).to_parquet(tmp / LAYERS_FILE, index=False)
        if timestep_rows is not None:
            _frame(timestep_rows, TIMESTEP_COLUMNS, _TIMESTEP_DTYPES).to_parquet(tmp / TIMESTEPS_FILE, index=False)
        payload = {"schema_version": SCHEMA_VERSION, **info}
        (tmp / INFO_FILE).write_text(json.dumps(_json_safe(payload), indent=2, sort_keys=False) + "\n")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replace_dir(src: Path, dst: Path) -> None:
    if dst.exists():
        old = dst.parent / f".{dst.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)


def read_run_record(path: str | os.PathLike) -> RunRecord:
    """Read and check a run record.

    Raises:
        RecordError: naming the file that is missing or unreadable.
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
    config_path = path / CONFIG_FILE
    try:
        config = yaml.safe_load(config_path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise RecordError(f"{config_path}: cannot read run config ({err})") from err
    steps = _read_table(path / STEPS_FILE, STEP_COLUMNS)
    layers = _read_table(path / LAYERS_FILE, LAYER_COLUMNS)
    ts_path = path / TIMESTEPS_FILE
    timesteps = _read_table(ts_path, TIMESTEP_COLUMNS) if ts_path.exists() else None
    return RunRecord(path, config, info, steps, layers, timesteps)


def _read_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise RecordError(f"{path}: cannot read table ({err})") from err
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RecordError(f"{path}: missing columns {missing}")
    return frame


def is_complete(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a run record (its ``run.json`` is written last, inside the rename)."""
    return (Path(path) / INFO_FILE).is_file()


def read_info(path: str | os.PathLike) -> Optional[dict[str, Any]]:
    """``run.json`` of a complete record at ``path``, or None if there is none or it is unreadable."""
    try:
        info = json.loads((Path(path) / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def write_json_atomic(path: str | os.PathLike, content: dict[str, Any]) -> Path:
    """Write a small JSON document (a batch manifest, a summary) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(_json_safe(content), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON document, raising ``RecordError`` that names the file."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise RecordError(f"{path}: cannot read ({err})") from err


def load_batches(manifests: list[str]) -> list[tuple[dict[str, Any], RunRecord]]:
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
            record = read_run_record(entry["path"])
            if record.info.get("fingerprint") != entry.get("fingerprint"):
                raise RecordError(f"{Path(entry['path']) / INFO_FILE}: record does not match its batch "
                                  f"manifest {manifest_path} (rerun the workflow)")
            loaded.append((entry, record))
    return loaded


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a summary table as parquet, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


@dataclass(frozen=True)
class ScalePaths:
    """Where the products of one scale live: ``<results>/<scale>/...``."""

    results: str | os.PathLike
    scale: str

    @property
    def root(self) -> Path:
        """``<results>/<scale>``."""
        return Path(self.results) / self.scale

    @property
    def runs(self) -> Path:
        """The run records."""
        return self.root / "runs"

    def summary(self, name: str) -> Path:
        """An aggregated table: ``runs``, ``layers`` or ``timesteps``."""
        return self.root / "summary" / f"{name}.parquet"

    def analysis(self, name: str) -> Path:
        """A computed table (claims, theory)."""
        return self.root / "analysis" / f"{name}.parquet"

    def figure(self, name: str) -> Path:
        """A figure PDF."""
        return self.root / "figures" / f"{name}.pdf"

    def table(self, name: str) -> Path:
        """A LaTeX table."""
        return self.root / "tables" / f"{name}.tex"

    @property
    def numbers(self) -> Path:
        """The LaTeX macros of every number the paper quotes."""
        return self.root / "numbers.tex"


def read_summary(paths: ScalePaths) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The aggregated ``runs``, ``layers`` and ``timesteps`` tables of a scale."""
    return tuple(_read_table(paths.summary(name), ()) for name in ("runs", "layers", "timesteps"))  # type: ignore[return-value]


def read_steps(paths: ScalePaths, runs: Any) -> pd.DataFrame:
    """The step tables of the given runs, stacked long with a ``run`` column."""
    parts = []
    for run in runs:
        frame = _read_table(paths.runs / run / STEPS_FILE, STEP_COLUMNS)
        frame.insert(0, "run", run)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["run", *STEP_COLUMNS])


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text product (LaTeX) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.write_text(text)
    os.replace(tmp, path)
    return path

"""Studies: factorial grids of runs, read from ``conf/studies/<study>.yaml``.

A study file names factors (plain identifiers from ``config.FACTORS``, or dotted config
keys) with their values, settings fixed for every run, and per-scale changes::

    description: ...
    claims: [1, 2]
    fixed: {model: mlp, width: 64}
    grid: {activation: [sigmoid, relu], depth: [5, 20]}
    scales:
      smoke: {seeds: 1, grid: {depth: [4]}, fixed: {max_steps: 10}}
      quick: {seeds: 2, runs_per_batch: 4}   # optional: overrides conf/workflow.yaml
      full:  {seeds: 5, grid: {depth: [5, 20, 50]}}

Every run of the selected scale is composed through Hydra and validated when the study is
loaded, so a bad study fails at parse time with a message naming the file and the key.
Runs are assigned round-robin to batches; one batch is one training job (see ``batch``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import OmegaConf

from gradatlas.config import FACTORS, GROUP_FACTORS, ConfigError, RunConfig, load_run_config

SCALES = ("smoke", "quick", "full")
STUDY_KEYS = {"description", "claims", "fixed", "grid", "scales"}
SCALE_KEYS = {"seeds", "fixed", "grid", "runs_per_batch"}


class StudyError(ValueError):
    """A study file is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class PlannedRun:
    """One run of a study: its grid coordinates, its record directory and its overrides."""

    study: str
    cell: str
    seed: int
    factors: tuple[tuple[str, Any], ...]
    settings: tuple[tuple[str, Any], ...]

    @property
    def relpath(self) -> str:
        """Record directory relative to ``<results>/<scale>/runs``."""
        return f"{self.study}/{self.cell}/seed-{self.seed}"

    def overrides(self) -> dict[str, Any]:
        """Fixed settings, then grid factors, then the seed (later entries win)."""
        return {**dict(self.settings), **dict(self.factors), "seed": self.seed}


@dataclass(frozen=True)
class Study:
    """A parsed and validated study at one scale."""

    name: str
    path: Path
    description: str
    claims: tuple[int, ...]
    factors: tuple[str, ...]
    runs: tuple[PlannedRun, ...]
    runs_per_batch: Optional[int] = None


def _format_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _conf_dir() -> Path:
    from gradatlas.train import CONF_DIR

    return CONF_DIR


@lru_cache(maxsize=256)
def _compose_groups(groups: tuple[tuple[str, str], ...]) -> Any:
    from hydra import compose, initialize_config_dir

    overrides = [f"{GROUP_FACTORS[name]}={value}" for name, value in groups]
    with initialize_config_dir(config_dir=str(_conf_dir()), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def compose_run(settings: dict[str, Any], out: str | None = None, device: str | None = None) -> RunConfig:
    """Compose ``conf/train.yaml`` with factor settings, as the command line would.

    Args:
        settings: factor names (or dotted keys) -> values.
        out: the run-record directory.
        device: ``auto``, ``cpu`` or ``cuda`` (the config's default if None).

    Raises:
        ConfigError: for an unknown factor or key, or an invalid value.
    """
    groups = tuple(sorted((k, str(v)) for k, v in settings.items() if k in GROUP_FACTORS))
    try:
        cfg = _compose_groups(groups).copy()
    except Exception as err:  # Hydra reports a missing group option as several error types
        raise ConfigError(str(err).splitlines()[0]) from err
    for name, value in settings.items():
        if name in GROUP_FACTORS:
            continue
        key = FACTORS.get(name, name)
        if name not in FACTORS and "." not in name:
            raise ConfigError(f"unknown factor {name!r}; known: {', '.join(FACTORS)} (or a dotted config key)")
        if OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
            raise ConfigError(f"unknown config key {key!r}")
        OmegaConf.update(cfg, key, value, merge=False)
    if out is not None:
        cfg.out = out
    if device is not None:
        cfg.device = device
    return load_run_config(cfg)


def _check_keys(path: Path, where: str, given: dict, allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise StudyError(f"{path}: {where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _mapping(path: Path, where: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StudyError(f"{path}: {where} must be a mapping, got {type(value).__name__}")
    return value


def load_study(path: str | Path, scale: str) -> Study:
    """Parse, expand and validate a study file at ``scale``.

    Raises:
        StudyError: naming the file and the offending key.
    """
    path = Path(path)
    if scale not in SCALES:
        raise StudyError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise StudyError(f"{path}: cannot read study ({err})") from err
    raw = _mapping(path, "the study", raw)
    _check_keys(path, "top level", raw, STUDY_KEYS)
    scales = _mapping(path, "scales", raw.get("scales"))
    _check_keys(path, "scales", scales, set(SCALES))
    plans = {name: _scale_plan(path, raw, scales, name) for name in SCALES}
    fixed, grid, seeds = plans[scale]
    # Every factor value of every scale alone, so that an error names the key that caused it
    # whichever scale is selected; the full product only at the selected scale.
    for name, (s_fixed, s_grid, _) in plans.items():
        first = {key: values[0] for key, values in s_grid.items()}
        _validate(path, f"fixed (scale {name})", {**s_fixed, **first})
        for key, values in s_grid.items():
            for value in values:
                _validate(path, f"grid.{key}={value!r} (scale {name})", {**s_fixed, **first, key: value})

    name = path.stem
    runs = []
    for combo in itertools.product(*grid.values()):
        factors = tuple(zip(grid.keys(), combo))
        cell = "/".join(f"{key}-{_format_value(value)}" for key, value in factors)
        _validate(path, f"grid cell {cell}", {**fixed, **dict(factors)})
        for seed in range(seeds):
            runs.append(PlannedRun(name, cell, seed, factors, tuple(fixed.items())))
    claims = raw.get("claims", [])
    per_batch = _mapping(path, "scales", raw.get("scales")).get(scale, {}) or {}
    per_batch = per_batch.get("runs_per_batch")
    if per_batch is not None and (not isinstance(per_batch, int) or isinstance(per_batch, bool) or per_batch < 1):
        raise StudyError(f"{path}: scales.{scale}.runs_per_batch must be a positive integer, got {per_batch!r}")
    return Study(name, path, str(raw.get("description", "")), tuple(claims), tuple(grid), tuple(runs), per_batch)


def _scale_plan(path: Path, raw: dict, scales: dict, scale: str) -> tuple[dict, dict, int]:
    """Fixed settings, grid and seed count of one scale, checked for shape (not values)."""
    at_scale = _mapping(path, f"scales.{scale}", scales.get(scale))
    _check_keys(path, f"scales.{scale}", at_scale, SCALE_KEYS)
    fixed = {**_mapping(path, "fixed", raw.get("fixed")), **_mapping(path, f"scales.{scale}.fixed", at_scale.get("fixed"))}
    base_grid = _mapping(path, "grid", raw.get("grid"))
    scale_grid = _mapping(path, f"scales.{scale}.grid", at_scale.get("grid"))
    for key in scale_grid:
        if key not in base_grid:
            raise StudyError(f"{path}: scales.{scale}.grid.{key}: not a factor of the study's grid")
    grid = {**base_grid, **scale_grid}
    if not grid:
        raise StudyError(f"{path}: grid is empty: a study needs at least one factor")
    for key, values in grid.items():
        if key == "seed":
            raise StudyError(f"{path}: grid.seed: set the number of seeds with scales.<scale>.seeds")
        if not isinstance(values, list) or not values:
            raise StudyError(f"{path}: grid.{key}: needs a non-empty list of values, got {values!r}")
        if len(set(map(_format_value, values))) != len(values):
            raise StudyError(f"{path}: grid.{key}: repeated values {values!r}")
    seeds = at_scale.get("seeds", 1)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise StudyError(f"{path}: scales.{scale}.seeds must be a positive integer, got {seeds!r}")
    return fixed, grid, seeds


def _validate(path: Path, where: str, settings: dict[str, Any]) -> None:
    try:
        compose_run(settings)
    except ConfigError as err:
        raise StudyError(f"{path}: {where}: {err}") from err


def batch_count(study: Study, runs_per_batch: int) -> int:
    """Number of training jobs for a study; the study's own ``runs_per_batch`` (for costly
    runs, so that they spread over several jobs) overrides the workflow's."""
    return max(1, math.ceil(len(study.runs) / (study.runs_per_batch or runs_per_batch)))


def batch_runs(study: Study, runs_per_batch: int, batch: int) -> list[PlannedRun]:
    """The runs of batch ``batch``: round-robin over the grid, which mixes cheap and costly
    cells in every batch."""
    count = batch_count(study, runs_per_batch)
    if not 0 <= batch < count:
        raise ValueError(f"study {study.name} has batches 0..{count - 1}, not {batch}")
    return [run for index, run in enumerate(study.runs) if index % count == batch]

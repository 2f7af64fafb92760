"""Studies: factorial grids of runs, read from ``conf/studies/<study>.yaml``.

A study file names factors (plain identifiers from ``config.FACTORS``, or dotted config
keys) with their values, settings fixed for every run, and per-scale changes::

    description: ...
    claims: [1, 2]
    fixed: {model: mlp, width: 64}
    grid: {activation: [sigmoid, relu], depth: [5, 20]}
    scales:
      smoke: {seeds: 1, grid: {depth: [4]}, fixed: {max_steps: 10}}
      quick: {seeds: 2}
      full:  {seeds: 5, grid: {depth: [5, 20, 50]}}

Every run of the selected scale is composed through Hydra and validated when the study is
loaded, so a bad study fails at parse time with a message naming the file and the key.
``plan_batches`` packs a study's runs into batches of about equal estimated cost
(``costs``); one batch is one training job (see ``batch``).
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from gradatlas import records
from gradatlas.config import FACTORS, GROUP_FACTORS, ConfigError, RunConfig, load_run_config, to_container
from gradatlas.costs import estimated_seconds

SCALES = ("smoke", "quick", "full")
STUDY_KEYS = {"description", "claims", "fixed", "grid", "scales"}
SCALE_KEYS = {"seeds", "fixed", "grid"}
# A grid key is a factor name or a dotted config key; it becomes part of a record path.
GRID_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class StudyError(ValueError):
    """A study file is invalid; the message names the file and the key."""


class _DuplicateKey(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the
    last one silently: a second ``grid:`` would replace the first)."""

    def construct_mapping(self, node, deep=False):
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in first:
                    raise _DuplicateKey(f"duplicate key {key!r} at line {key_node.start_mark.line + 1} "
                                        f"(first at line {first[key] + 1})")
                first[key] = key_node.start_mark.line
            except TypeError:  # an unhashable key: the base class reports it
                break
        return super().construct_mapping(node, deep=deep)


def study_name(path: str | Path) -> str:
    """A study's name: its file's stem (``records.study_name``).

    Raises:
        StudyError: naming the file.
    """
    try:
        return records.study_name(path)
    except ValueError as err:
        raise StudyError(str(err)) from None


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
    """A parsed study at one scale; ``costs`` (estimated seconds per run, in ``runs`` order)
    is filled when the study was validated."""

    name: str
    path: Path
    description: str
    claims: tuple[int, ...]
    factors: tuple[str, ...]
    runs: tuple[PlannedRun, ...]
    costs: tuple[float, ...] = ()


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
def _composed_defaults(groups: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """``conf/train.yaml`` with these group choices, as plain containers (interpolations kept).

    Hydra composes each combination of groups once per process; the factors are then set on
    a copy of plain dicts, which is far cheaper than OmegaConf operations per run (a
    workflow composes every cell of every study when it parses them).
    """
    from hydra import compose, initialize_config_dir

    overrides = [f"{GROUP_FACTORS[name]}={value}" for name, value in groups]
    with initialize_config_dir(config_dir=str(_conf_dir()), version_base="1.3"):
        return OmegaConf.to_container(compose(config_name="train", overrides=overrides), resolve=False)


def compose_run(
    settings: dict[str, Any], out: str | None = None, device: str | None = None, overwrite: bool | None = None
) -> RunConfig:
    """Compose ``conf/train.yaml`` with factor settings, as the command line would.

    Args:
        settings: factor names (or dotted keys) -> values.
        out: the run-record directory.
        device: ``auto``, ``cpu`` or ``cuda`` (the config's default if None).
        overwrite: whether the run may replace a record of another config at ``out``.

    Raises:
        ConfigError: for an unknown factor or key, or an invalid value.
    """
    groups = tuple(sorted((k, str(v)) for k, v in settings.items() if k in GROUP_FACTORS))
    try:
        cfg = copy.deepcopy(_composed_defaults(groups))
    except Exception as err:  # Hydra reports a missing group option as several error types
        raise ConfigError(str(err).splitlines()[0]) from err
    for name, value in settings.items():
        if name in GROUP_FACTORS:
            continue
        if name not in FACTORS and "." not in name:
            raise ConfigError(f"unknown factor {name!r}; known: {', '.join(FACTORS)} (or a dotted config key)")
        key = FACTORS.get(name, name)
        *parents, leaf = key.split(".")
        node: Any = cfg
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise ConfigError(f"unknown config key {key!r}")
        node[leaf] = value
    if out is not None:
        cfg["out"] = out
    if device is not None:
        cfg["device"] = device
    if overwrite is not None:
        cfg["overwrite"] = overwrite
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


def load_study(path: str | Path, scale: str, validate: bool = True) -> Study:
    """Parse, expand and validate a study file at ``scale``.

    ``validate=False`` skips composing every value and cell (a training job does, for the
    workflow validated them when it parsed the study, and each run is composed anyway).

    Raises:
        StudyError: naming the file and the offending key.
    """
    path = Path(path)
    name = study_name(path)
    if scale not in SCALES:
        raise StudyError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except _DuplicateKey as err:
        raise StudyError(f"{path}: {err}") from None
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
    for s_name, (s_fixed, s_grid, _) in (plans.items() if validate else ()):
        first = {key: values[0] for key, values in s_grid.items()}
        _validate_first(path, s_name, s_fixed, first)
        for key, values in s_grid.items():
            seen: dict[Any, Any] = {}
            for value in values:
                cfg = _validate(path, f"grid.{key}={value!r} (scale {s_name})", {**s_fixed, **first, key: value})
                coerced = _select(to_container(cfg), FACTORS.get(key, key))
                if coerced in seen:
                    raise StudyError(f"{path}: grid.{key} (scale {s_name}): {seen[coerced]!r} and {value!r} are "
                                     f"the same value ({coerced!r}) once typed; list it once")
                seen[coerced] = value

    runs, costs = [], []
    for combo in itertools.product(*grid.values()):
        factors = tuple(zip(grid.keys(), combo))
        cell = "/".join(f"{key}-{records.path_token(_format_value(value))}" for key, value in factors)
        cost = estimated_seconds(_validate(path, f"grid cell {cell}", {**fixed, **dict(factors)})) if validate else None
        for seed in range(seeds):
            runs.append(PlannedRun(name, cell, seed, factors, tuple(fixed.items())))
            costs.append(cost)
    claims = raw.get("claims", [])
    return Study(name, path, str(raw.get("description", "")), tuple(claims), tuple(grid), tuple(runs),
                 tuple(costs) if validate else ())


def _select(container: dict[str, Any], key: str) -> Any:
    node: Any = container
    for part in key.split("."):
        node = node[part]
    return node


def _validate_first(path: Path, scale: str, fixed: dict[str, Any], first: dict[str, Any]) -> None:
    """Validate the fixed settings with each factor's first value; an error is labelled with
    what caused it: ``fixed`` if the fixed settings fail alone with the same error, else the
    grid value that does."""
    try:
        compose_run({**fixed, **first})
        return
    except ConfigError as err:
        error = str(err)
    if _error_of(fixed) == error:
        raise StudyError(f"{path}: fixed (scale {scale}): {error}")
    for key, value in first.items():
        if _error_of({**fixed, key: value}) == error:
            raise StudyError(f"{path}: grid.{key}={value!r} (scale {scale}): {error}")
    raise StudyError(f"{path}: fixed with the grid's first values {first} (scale {scale}): {error}")


def _error_of(settings: dict[str, Any]) -> str | None:
    try:
        compose_run(settings)
    except ConfigError as err:
        return str(err)
    return None


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
        if not isinstance(key, str) or not GRID_KEY.fullmatch(key):
            raise StudyError(f"{path}: grid.{key}: a factor name or dotted config key (letters, digits, _ and .)")
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


def _validate(path: Path, where: str, settings: dict[str, Any]) -> RunConfig:
    try:
        return compose_run(settings)
    except ConfigError as err:
        raise StudyError(f"{path}: {where}: {err}") from err


def plan_batches(study: Study, batch_seconds: float) -> list[tuple[int, ...]]:
    """Pack the study's runs into batches (indices into ``study.runs``) of about
    ``batch_seconds`` of estimated training each, longest batch first.

    Longest-processing-time-first: runs in decreasing cost, each to the batch with the least
    cost so far. Batches come out within one run's cost of each other, so the jobs of a
    study end together, and no batch holds only the cheap or only the costly cells. The
    plan is a pure function of the study and ``batch_seconds``: the same on every call.
    """
    if not study.costs:
        raise ValueError(f"study {study.name} was loaded without validation: it has no cost estimates")
    if not batch_seconds > 0:
        raise ValueError(f"batch_seconds must be > 0, got {batch_seconds}")
    count = max(1, min(len(study.runs), math.ceil(sum(study.costs) / batch_seconds)))
    order = sorted(range(len(study.runs)), key=lambda i: (-study.costs[i], i))
    loads, members = [0.0] * count, [[] for _ in range(count)]
    for index in order:
        target = min(range(count), key=lambda b: (loads[b], b))
        loads[target] += study.costs[index]
        members[target].append(index)
    ranked = sorted(range(count), key=lambda b: (-loads[b], b))
    return [tuple(sorted(members[b])) for b in ranked]


def batch_cost(study: Study, indices: tuple[int, ...]) -> float:
    """Estimated seconds of one batch: the sum of its runs' costs."""
    return sum(study.costs[i] for i in indices)

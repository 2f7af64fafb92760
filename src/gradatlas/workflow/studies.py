"""Studies: factorial grids of runs, read from ``conf/studies/<study>.yaml``.

A study file names factors (plain identifiers from ``names.FACTORS``, or dotted config
keys) with their values, settings fixed for every run, and per-scale changes::

    description: ...
    claims: [1, 2]
    fixed: {model: mlp, width: 64}
    grid: {activation: [sigmoid, relu], depth: [5, 20]}
    scales:
      smoke: {seeds: 1, grid: {depth: [4]}, fixed: {max_steps: 10}}
      quick: {seeds: 2}
      full:  {seeds: 5, grid: {depth: [5, 20, 50]},
              cell_seeds: [{cell: {activation: relu, depth: 50}, seeds: 20}]}

``cell_seeds`` gives the cells matching every listed factor value their own number of seeds
(a cell that decides a claim and needs more seeds than the rest of the grid, say), so that
one cell's sample size does not multiply the whole grid. Seeds added after a result was
seen are optional stopping; the seeds a scale needs are instead fixed by the *seed rule* from
the pilot (the quick scale) before that scale runs: ``python -m gradatlas.analysis seeds``
writes ``conf/pilot/<scale>.yaml``, and every cell it lists gets at least its seeds there
(``pilot_seeds``).

The file's shape (keys, types, seed counts, lists of values) is checked against
``conf/studies.schema.yaml`` (``check_shape``); what a schema cannot say (a scale's grid and
``cell_seeds`` name only factors and values of the study's grid, a tuned factor is neither
fixed nor a grid factor) is checked here, one function each. Then every run of the selected
scale is composed through Hydra and validated, so a bad study fails at parse time with a
message naming the file and the key.
``plan_batches`` packs a study's runs into batches of about equal estimated cost
(``costs``); one batch is one training job (see ``batch``).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf

from gradatlas.core import layout
from gradatlas.core.names import FACTORS, GROUP_FACTORS
from gradatlas.run.config import (
    ConfigError,
    RunConfig,
    composition_error,
    load_run_config,
    register_schema,
    stack_key,
    to_container,
)
from gradatlas.workflow.costs import (EXPECTED_EXTENSION_STEPS, estimated_seconds, limit_stack_size, size_factor,
                                      stack_seconds)

SCALES = ("smoke", "quick", "full", "cluster")
# The shape of a study file: keys, types, seed counts, grid keys (which become record paths).
STUDY_SCHEMA = layout.CONF_DIR / "studies.schema.yaml"
# Sweep runs use seeds of their own, so that the seeds a verdict is computed on played no
# part in choosing their learning rate.
SWEEP_SEED_OFFSET = 1000
# Sweep seeds per candidate at least (and by default) at each scale: the choice is made on
# the mean over them, so that one seed's luck does not choose; the smoke scale only runs.
MIN_SWEEP_SEEDS = {"smoke": 1, "quick": 2, "full": 3, "cluster": 3}
# Steps a numeric candidate list may extend beyond each of its ends (gradatlas.workflow.tuning),
# unless a study's ``tune.extend`` says otherwise.
DEFAULT_EXTENSIONS = 2


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
    """A study's name: its file's stem (``layout.study_name``).

    Raises:
        StudyError: naming the file.
    """
    try:
        return layout.study_name(path)
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
    # Sweep runs of a tuned study: the candidate settings they try (empty for its own runs).
    trial: tuple[tuple[str, Any], ...] = ()

    @property
    def relpath(self) -> str:
        """Record directory relative to ``<results>/<scale>/runs``."""
        if self.trial:
            return f"{self.study}/sweep/{self.cell}/{_cell_name(self.trial)}/seed-{self.seed}"
        return f"{self.study}/{self.cell}/seed-{self.seed}"

    def overrides(self) -> dict[str, Any]:
        """Fixed settings, then grid factors, then a sweep run's trial, then the seed (later
        entries win)."""
        return {**dict(self.settings), **dict(self.factors), **dict(self.trial), "seed": self.seed}


@dataclass(frozen=True)
class Tune:
    """Per-cell selection of a study's training settings (the learning rate, say): every grid
    cell trains ``seeds`` unprobed sweep runs at each combination of ``choices``, and its own
    runs with the combination of the best mean validation metric (``gradatlas.workflow.tuning``);
    a numeric list whose end a cell chooses extends by up to ``extend`` steps per side."""

    choices: tuple[tuple[str, tuple[Any, ...]], ...]
    seeds: int
    extend: int = DEFAULT_EXTENSIONS

    def sweep_seeds(self) -> range:
        """The seeds of every sweep run (each candidate, each cell, each extension)."""
        return range(SWEEP_SEED_OFFSET, SWEEP_SEED_OFFSET + self.seeds)

    def trials(self) -> list[tuple[tuple[str, Any], ...]]:
        """Every combination of the candidate values, in a fixed order."""
        names = [name for name, _ in self.choices]
        return [tuple(zip(names, combo)) for combo in itertools.product(*(values for _, values in self.choices))]


@dataclass(frozen=True)
class Study:
    """A parsed study at one scale; ``costs`` (estimated seconds per run, in ``runs`` order)
    is filled when the study was validated, and so are ``sweep_costs`` for ``sweep``."""

    name: str
    path: Path
    description: str
    claims: tuple[int, ...]
    factors: tuple[str, ...]
    runs: tuple[PlannedRun, ...]
    costs: tuple[float, ...] = ()
    tune: Tune | None = None
    sweep: tuple[PlannedRun, ...] = ()
    sweep_costs: tuple[float, ...] = ()
    # Per run (and sweep run), when validated: (config.stack_key, model name, costs.size_factor).
    # Runs of one key can train as one stack (loop.train_stack); model and size decide whether
    # they do on a CPU (costs.limit_stack_size).
    shapes: tuple[tuple[str, str, float], ...] = ()
    sweep_shapes: tuple[tuple[str, str, float], ...] = ()


def _format_value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _conf_dir() -> Path:
    from gradatlas.core.layout import CONF_DIR

    return CONF_DIR


@lru_cache(maxsize=256)
def _composed_defaults(groups: tuple[tuple[str, str, float], ...]) -> dict[str, Any]:
    """``conf/train.yaml`` with these group choices, as plain containers (interpolations kept).

    Hydra composes each combination of groups once per process; the factors are then set on
    a copy of plain dicts, which is far cheaper than OmegaConf operations per run (a
    workflow composes every cell of every study when it parses them).
    """
    from hydra import compose, initialize_config_dir

    register_schema()
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
        raise ConfigError(composition_error(err)) from err
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


@lru_cache(maxsize=1)
def _shape_validator() -> Any:
    """A validator of ``conf/studies.schema.yaml``, whose integers are Python ints (JSON
    Schema counts ``2.0`` as an integer; a seed count of ``2.0`` is a typo)."""
    import jsonschema

    schema = yaml.safe_load(STUDY_SCHEMA.read_text())
    base = jsonschema.validators.validator_for(schema)
    base.check_schema(schema)
    integers = base.TYPE_CHECKER.redefine("integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    return jsonschema.validators.extend(base, type_checker=integers)(schema)


def check_shape(path: Path, raw: Any) -> None:
    """Check a parsed study file against ``conf/studies.schema.yaml``.

    Raises:
        StudyError: naming the file, the key (``scales.full.cell_seeds[0].seeds``) and the
            schema's hint for it, for the most relevant error (``jsonschema.best_match``:
            the shallowest).
    """
    from jsonschema.exceptions import best_match, by_relevance

    # Of errors at one depth, an unknown key first: a misspelt key is also a missing one.
    error = best_match(_shape_validator().iter_errors(raw), key=by_relevance(strong=frozenset({"additionalProperties"})))
    if error is None:
        return
    where = error.json_path.removeprefix("$.") if error.path else "the study"
    hint = error.schema.get("description") if isinstance(error.schema, dict) else None
    raise StudyError(f"{path}: {where}: {error.message}" + (f" ({hint})" if hint else ""))


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
    check_shape(path, raw)
    scales = raw.get("scales") or {}
    plans = {name: _scale_plan(path, raw, scales.get(name) or {}, name) for name in SCALES}
    fixed, grid, seeds, cell_seeds = plans[scale]
    tune = _tune(path, raw, scales.get(scale) or {}, scale, grid, fixed)
    # Every factor value of every scale alone, so that an error names the key that caused it
    # whichever scale is selected; the full product only at the selected scale.
    for s_name, (s_fixed, s_grid, _, _) in (plans.items() if validate else ()):
        _check_grid_values(path, s_name, s_fixed, s_grid)

    runs, costs, sweep, sweep_costs, shapes, sweep_shapes = [], [], [], [], [], []
    for combo in itertools.product(*grid.values()):
        factors = tuple(zip(grid.keys(), combo))
        cell = _cell_name(factors)
        cell_cfg = _validate(path, f"grid cell {cell}", {**fixed, **dict(factors)}) if validate else None
        cost = estimated_seconds(cell_cfg) if cell_cfg is not None else None
        count = max(_seeds_of(path, factors, seeds, cell_seeds), pilot_seeds(name, scale, factors))
        for seed in range(count):
            runs.append(PlannedRun(name, cell, seed, factors, tuple(fixed.items())))
            costs.append(cost)
            if cell_cfg is not None:
                shapes.append((stack_key(cell_cfg), cell_cfg.model.name, size_factor(cell_cfg)))
        for trial in tune.trials() if tune else ():
            # Sweep runs are unprobed: only their validation metric is read.
            settings = tuple({**fixed, "probe": "off"}.items())
            where = f"tune {_cell_name(trial)} in cell {cell}"
            cfg = _validate(path, where, {**dict(settings), **dict(factors), **dict(trial)}) if validate else None
            for seed in tune.sweep_seeds():
                sweep.append(PlannedRun(name, cell, seed, factors, settings, trial=trial))
                sweep_costs.append(estimated_seconds(cfg) if validate else None)
                if cfg is not None:
                    sweep_shapes.append((stack_key(cfg), cfg.model.name, size_factor(cfg)))
    claims = raw.get("claims", [])
    return Study(name, path, str(raw.get("description", "")), tuple(claims), tuple(grid), tuple(runs),
                 tuple(costs) if validate else (), tune, tuple(sweep), tuple(sweep_costs) if validate else (),
                 tuple(shapes), tuple(sweep_shapes))


def _cell_name(factors: tuple[tuple[str, Any], ...]) -> str:
    """``key-value/...``: each value as a plain path token (``layout.path_token``)."""
    return "/".join(f"{key}-{layout.path_token(_format_value(value))}" for key, value in factors)


def _tune(path: Path, raw: dict, at_scale: dict, scale: str, grid: dict, fixed: dict) -> Tune | None:
    """The study's per-cell selection at ``scale`` (a scale's ``tune`` keys replace the
    study's), or None when it has none. ``tune`` maps factors to candidate values, plus
    ``seeds`` (sweep seeds per candidate, at least and by default ``MIN_SWEEP_SEEDS[scale]``)
    and ``extend`` (``DEFAULT_EXTENSIONS``); the schema checked each list's shape."""
    spec = {**(raw.get("tune") or {}), **(at_scale.get("tune") or {})}
    if not spec:
        return None
    seeds = spec.pop("seeds", MIN_SWEEP_SEEDS[scale])
    extend = spec.pop("extend", DEFAULT_EXTENSIONS)
    if seeds < MIN_SWEEP_SEEDS[scale]:
        raise StudyError(f"{path}: tune.seeds (scale {scale}): {seeds} sweep seeds; the choice needs at least "
                         f"{MIN_SWEEP_SEEDS[scale]} at this scale")
    if not spec:
        raise StudyError(f"{path}: tune: name at least one factor with candidate values (e.g. lr: [0.01, 0.1])")
    for key in spec:
        if key in grid or key in fixed or FACTORS.get(key, key) in fixed:
            raise StudyError(f"{path}: tune.{key}: the study also sets {key} (grid or fixed); a tuned factor is chosen per cell")
    if not fixed.get("data.n_val"):
        raise StudyError(f"{path}: tune: candidates are compared on a validation split; set data.n_val > 0 in fixed")
    for key, values in spec.items():
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric and not (values[0] > 0 and all(a < b for a, b in zip(values, values[1:]))):
            raise StudyError(f"{path}: tune.{key}: {values}: list numeric candidates positive and ascending "
                             "(an end extends by the ratio of its two neighbours)")
    return Tune(tuple((key, tuple(values)) for key, values in spec.items()), seeds, extend)


def sweep_run(study: Study, cell: str, trial: dict[str, Any], seed: int) -> PlannedRun:
    """A sweep run of ``cell`` at any trial (an extension's value, say) on sweep seed
    ``seed``: the cell's sweep settings, under ``<study>/sweep/`` like the planned ones."""
    for run in study.sweep:
        if run.cell == cell:
            names = [name for name, _ in study.tune.choices]
            return dataclasses.replace(run, seed=seed, trial=tuple((name, trial[name]) for name in names))
    raise ValueError(f"study {study.name} has no sweep runs of cell {cell!r}")


def _select(container: dict[str, Any], key: str) -> Any:
    node: Any = container
    for part in key.split("."):
        node = node[part]
    return node


def _check_grid_values(path: Path, scale: str, fixed: dict[str, Any], grid: dict[str, list]) -> None:
    """Compose every value of every factor (with the other factors' first values): each must
    make a valid run, and no two may be the same value once typed (``1`` and ``1.0`` of a
    float key would be two cells of one config)."""
    first = {key: values[0] for key, values in grid.items()}
    _validate_first(path, scale, fixed, first)
    for key, values in grid.items():
        seen: dict[Any, Any] = {}
        for value in values:
            cfg = _validate(path, f"grid.{key}={value!r} (scale {scale})", {**fixed, **first, key: value})
            coerced = _select(to_container(cfg), FACTORS.get(key, key))
            if coerced in seen:
                raise StudyError(f"{path}: grid.{key} (scale {scale}): {seen[coerced]!r} and {value!r} are "
                                 f"the same value ({coerced!r}) once typed; list it once")
            seen[coerced] = value


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


CellSeeds = tuple[tuple[dict[str, Any], int], ...]


def _scale_plan(path: Path, raw: dict, at_scale: dict, scale: str) -> tuple[dict, dict, int, CellSeeds]:
    """Fixed settings, grid, seed count and per-cell seed counts of one scale (a scale's
    ``fixed`` and ``grid`` keys replace the study's)."""
    fixed = {**(raw.get("fixed") or {}), **(at_scale.get("fixed") or {})}
    base_grid, scale_grid = raw.get("grid") or {}, at_scale.get("grid") or {}
    _check_scale_grid(path, scale, base_grid, scale_grid)
    grid = {**base_grid, **scale_grid}
    rules = at_scale.get("cell_seeds") or []
    _check_cell_seeds(path, f"scales.{scale}.cell_seeds", rules, grid)
    return fixed, grid, at_scale.get("seeds", 1), tuple((rule["cell"], rule["seeds"]) for rule in rules)


def _check_scale_grid(path: Path, scale: str, base_grid: dict, scale_grid: dict) -> None:
    """A scale changes the values of the study's factors; it adds none (every scale has the
    same cells' shape, so that the analysis reads one study)."""
    for key in scale_grid:
        if key not in base_grid:
            raise StudyError(f"{path}: scales.{scale}.grid.{key}: not a factor of the study's grid")


def _check_cell_seeds(path: Path, where: str, rules: list[dict], grid: dict) -> None:
    """Each ``cell_seeds`` rule selects factors and values of the scale's grid, so that a typo
    cannot silently select nothing."""
    for i, rule in enumerate(rules):
        for key, value in rule["cell"].items():
            if key not in grid:
                raise StudyError(f"{path}: {where}[{i}].cell.{key}: not a factor of the grid ({', '.join(grid)})")
            if _format_value(value) not in map(_format_value, grid[key]):
                raise StudyError(f"{path}: {where}[{i}].cell.{key}={value!r}: not one of the grid's values {grid[key]}")


def _seeds_of(path: Path, factors: tuple[tuple[str, Any], ...], seeds: int, cell_seeds: CellSeeds) -> int:
    """The seed count of one cell: the only ``cell_seeds`` rule it matches, else ``seeds``.

    Raises:
        StudyError: if the cell matches two rules (which count would be ambiguous).
    """
    values = {key: _format_value(value) for key, value in factors}
    matched = [(cell, n) for cell, n in cell_seeds
               if all(values[key] == _format_value(value) for key, value in cell.items())]
    if len(matched) > 1:
        raise StudyError(f"{path}: cell {_cell_name(factors)} matches several cell_seeds rules: {[c for c, _ in matched]}")
    return matched[0][1] if matched else seeds


@functools.lru_cache(maxsize=None)
def _pilot_rules(scale: str) -> tuple[tuple[str, tuple[tuple[str, str], ...], int], ...]:
    """The seed rule's output for ``scale`` (``conf/pilot/<scale>.yaml``, written by ``python -m
    gradatlas.analysis seeds`` from the pilot and committed before the scale runs): (study,
    cell factors as text, seeds) per listed cell; none without the file."""
    path = layout.CONF_DIR / "pilot" / f"{scale}.yaml"
    if not path.exists():
        return ()
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        return tuple((str(c["study"]), tuple((k, _format_value(v)) for k, v in c["cell"].items()), int(c["seeds"]))
                     for c in doc.get("cells") or [])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise StudyError(f"{path}: cannot read the seed rule's output ({err})") from err


def pilot_seeds(study: str, scale: str, factors: tuple[tuple[str, Any], ...]) -> int:
    """The seeds the pilot's seed rule gives a cell at ``scale`` (0 where it lists none)."""
    values = {key: _format_value(value) for key, value in factors}
    return max((n for name, cell, n in _pilot_rules(scale)
                if name == study and all(values.get(k) == v for k, v in cell)), default=0)


def _validate(path: Path, where: str, settings: dict[str, Any]) -> RunConfig:
    try:
        return compose_run(settings)
    except ConfigError as err:
        raise StudyError(f"{path}: {where}: {err}") from err


def plan_stacks(study: Study, stack_size: int = 1, sweep: bool = False,
                indices: tuple[int, ...] | None = None, gpu: bool = False) -> list[tuple[int, ...]]:
    """Group the study's runs (or sweep runs; or only ``indices`` of them) into stacks: runs
    of one ``config.stack_key``, in index order, at most ``stack_size`` each
    (``costs.limit_stack_size`` lowers it for a model that stacking does not speed up on a CPU). Grouping whole stacks again gives the same stacks, so a
    training job regroups its runs as the plan grouped them.
    """
    shapes = study.sweep_shapes if sweep else study.shapes
    if not shapes:
        raise ValueError(f"study {study.name} was loaded without validation: it has no stack keys")
    if stack_size < 1:
        raise ValueError(f"stack_size must be >= 1, got {stack_size}")
    groups: dict[str, list[int]] = {}
    for index in sorted(range(len(shapes)) if indices is None else indices):
        groups.setdefault(shapes[index][0], []).append(index)
    stacks = []
    for members in groups.values():
        _, model, factor = shapes[members[0]]
        size = limit_stack_size(model, stack_size, gpu, factor)
        stacks.extend(tuple(members[i : i + size]) for i in range(0, len(members), size))
    return stacks


def plan_batches(study: Study, batch_seconds: float, sweep: bool = False, stack_size: int = 1,
                 gpu: bool = False) -> list[tuple[int, ...]]:
    """Pack the study's runs (or, with ``sweep``, its lr-sweep runs) into batches (indices
    into ``study.runs`` or ``study.sweep``) of about ``batch_seconds`` of estimated training
    each, longest batch first; with ``stack_size`` > 1, whole stacks (``plan_stacks``) are
    packed, each costing ``costs.stack_seconds``.

    Longest-processing-time-first: stacks in decreasing cost, each to the batch with the
    least cost so far. Batches come out within one stack's cost of each other, so the jobs
    of a study end together, and no batch holds only the cheap or only the costly cells. The
    plan is a pure function of the study, ``batch_seconds`` and ``stack_size``.
    """
    if not study.costs:
        raise ValueError(f"study {study.name} was loaded without validation: it has no cost estimates")
    if not batch_seconds > 0:
        raise ValueError(f"batch_seconds must be > 0, got {batch_seconds}")
    costs = study.sweep_costs if sweep else study.costs
    if not costs:
        return []
    stacks = plan_stacks(study, stack_size, sweep, gpu=gpu) if stack_size > 1 else [(i,) for i in range(len(costs))]
    stack_costs = [_stack_cost(study, stack, sweep) for stack in stacks]
    count = max(1, min(len(stacks), math.ceil(sum(stack_costs) / batch_seconds)))
    order = sorted(range(len(stacks)), key=lambda i: (-stack_costs[i], stacks[i]))
    loads, members = [0.0] * count, [[] for _ in range(count)]
    for index in order:
        target = min(range(count), key=lambda b: (loads[b], b))
        loads[target] += stack_costs[index]
        members[target].extend(stacks[index])
    ranked = sorted(range(count), key=lambda b: (-loads[b], b))
    return [tuple(sorted(members[b])) for b in ranked]


def _stack_cost(study: Study, stack: tuple[int, ...], sweep: bool) -> float:
    costs = study.sweep_costs if sweep else study.costs
    if len(stack) == 1:
        return costs[stack[0]]
    _, model, factor = (study.sweep_shapes if sweep else study.shapes)[stack[0]]
    return stack_seconds(costs[stack[0]], len(stack), model, factor)


def batch_cost(study: Study, indices: tuple[int, ...], sweep: bool = False, stack_size: int = 1,
               gpu: bool = False) -> float:
    """Estimated seconds of one batch: the sum of its stacks' costs (of its runs' with
    ``stack_size`` 1)."""
    if stack_size == 1:
        return sum((study.sweep_costs if sweep else study.costs)[i] for i in indices)
    return sum(_stack_cost(study, stack, sweep) for stack in plan_stacks(study, stack_size, sweep, indices, gpu))


def expected_extension(study: Study, stack_size: int = 1, gpu: bool = False) -> tuple[float, float]:
    """Expected extension runs of a tuned study and their estimated seconds (its ``tune``
    job's work): per cell, ``costs.EXPECTED_EXTENSION_STEPS`` steps, each one trial on every
    sweep seed; the runs of one shape (``config.stack_key``; cells differing by a member
    setting, the initializer, say) stacked as the job stacks them, costed as their cell's
    sweep runs."""
    if study.tune is None or not study.sweep_costs:
        return 0.0, 0.0
    if not any(all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
               for _, values in study.tune.choices):
        return 0.0, 0.0
    first: dict[str, int] = {}
    for index, run in enumerate(study.sweep):
        first.setdefault(run.cell, index)
    by_shape: dict[str, list[int]] = {}
    for index in first.values():
        by_shape.setdefault(study.sweep_shapes[index][0], []).append(index)
    runs = EXPECTED_EXTENSION_STEPS * study.tune.seeds
    seconds = 0.0
    for members in by_shape.values():
        _, model, factor = study.sweep_shapes[members[0]]
        size = limit_stack_size(model, stack_size, gpu, factor)
        per_run = stack_seconds(1.0, size, model, factor) / size  # a full stack's share per run
        seconds += runs * per_run * sum(study.sweep_costs[i] for i in members)
    return runs * len(first), seconds

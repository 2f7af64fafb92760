"""Per-cell selection of training settings on a validation split, and when to widen the search.

A tuned study (``tune:`` in its study file, e.g. ``tune: {lr: [0.01, 0.03, 0.1]}``) first
trains sweep runs: every cell at each candidate (a *trial*: one value per tuned factor),
on ``seeds`` sweep seeds of their own, with the last ``data.n_val`` training examples held
out. Each cell's own runs then train with the trial whose sweep runs reach the best mean
validation metric over the sweep seeds. The test split plays no part in the choice.

Rule: accuracy is maximised, MSE minimised; a sweep run that diverged or failed scores the
worst possible value (so a trial that diverges on any sweep seed loses to one that does
not); ties go to the trial whose values come first (numeric candidates from small to
large, others as the study file lists them: ties go to the conservative choice).

Bracketing. A numeric candidate list (a learning rate) is only informative where the best
value lies inside it. When a cell's best trial takes the smallest or largest value of such
a factor *and* beats every trial with another value of it (not merely by the tie rule), the
cell's list extends one step beyond that edge, by the geometric ratio of the two candidates
at that edge (``extension_value``), and the cell is swept again at the new value (the other
factors as in its best trial, on the same sweep seeds). At most ``extend`` steps per side (a
study's ``tune.extend``, default ``studies.DEFAULT_EXTENSIONS``). A non-numeric factor (an
initializer) is never extended. Each cell's choice is then one of ``BRACKETS``.

This module decides; ``gradatlas.workflow.extend`` (the workflow's ``tune`` job) trains the
extension runs it asks for and writes the result.
"""

from __future__ import annotations

import math
import os
from numbers import Real
from typing import Any, Iterable, Mapping, Sequence

from gradatlas.core.files import read_json
from gradatlas.run import records
from gradatlas.workflow.manifests import record_path

HIGHER_IS_BETTER = {"accuracy": True, "mse": False}
# An extended value is rounded to this many significant figures, so that record paths and the
# tuning file read 0.333, not 0.33333333333333337.
EXTENSION_DIGITS = 3
# Where a cell's choice of a numeric factor lies in its (possibly extended) candidate list:
# inside the study's list; inside it once extended; still at an edge, the extension limit
# reached; at an edge only by the tie rule (an inner value scores as well: nothing points
# beyond the edge, so the list is not extended); or at an edge, about to be extended.
INTERIOR, EXTENDED, EDGE, TIED, PENDING = "interior", "extended", "edge", "tied", "pending"
BRACKETS = (INTERIOR, EXTENDED, EDGE, TIED)


def sweep_score(metric: str, status: str, value: float | None) -> float:
    """One sweep run's validation score, oriented so that larger is better."""
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    if status != "ok" or value is None or not math.isfinite(value):
        return -math.inf
    return sign * value


def trial_name(trial: dict[str, Any]) -> str:
    """A trial as text, e.g. ``lr=0.01,init=he_normal``."""
    return ",".join(f"{key}={value!r}" for key, value in trial.items())


def is_numeric(values: Iterable[Any]) -> bool:
    """Whether a tuned factor's candidates are numbers (extendable), not names."""
    return all(isinstance(v, Real) and not isinstance(v, bool) for v in values)


def extension_value(values: Sequence[float], side: str) -> float:
    """The candidate one step beyond the ``low`` or ``high`` end of ascending ``values``: the
    ratio of the two candidates at that end applied once more, to ``EXTENSION_DIGITS``
    significant figures (``[0.01, 0.03, 0.1]`` -> 0.00333 below, 0.333 above)."""
    ordered = sorted(values)
    value = ordered[0] ** 2 / ordered[1] if side == "low" else ordered[-1] ** 2 / ordered[-2]
    return float(f"{value:.{EXTENSION_DIGITS}g}")


def _value_orders(by_trial: Mapping[str, dict[str, Any]], choices: Mapping[str, Sequence[Any]] | None) -> dict[str, list]:
    """Per factor, the cell's candidate values in tie-break order: numbers ascending, names as
    the study lists them (as the sweep rows first name them without ``choices``)."""
    orders: dict[str, list] = {}
    for trial in by_trial.values():
        for key, value in trial.items():
            if value not in orders.setdefault(key, []):
                orders[key].append(value)
    for key, values in orders.items():
        listed = list((choices or {}).get(key, ()))
        if is_numeric(values):
            orders[key] = sorted(values)
        elif listed:
            orders[key] = sorted(values, key=lambda v: listed.index(v) if v in listed else len(listed))
    return orders


def _bracket(key: str, best: str, means: dict[str, float], trials: dict[str, dict[str, Any]],
             values: list, base: Sequence[Any] | None, limit: int) -> tuple[str, str | None]:
    """(bracket, side to extend or None) of the chosen value of numeric factor ``key`` in the
    cell whose best trial is named ``best``."""
    base = list(base) if base else values
    below = sum(v < min(base) for v in values)
    above = sum(v > max(base) for v in values)
    chosen = trials[best][key]
    side = "low" if chosen == values[0] else "high" if chosen == values[-1] else None
    if side is None:
        return (EXTENDED if below or above else INTERIOR), None
    others = [means[name] for name, trial in trials.items() if trial[key] != chosen]
    if others and means[best] <= max(others):
        return TIED, None
    if (below if side == "low" else above) >= limit:
        return EDGE, None
    return PENDING, side


def select_trials(rows: Iterable[dict[str, Any]], choices: Mapping[str, Sequence[Any]] | None = None,
                  extend: int = 0) -> dict[str, dict[str, Any]]:
    """Choose one trial per cell from sweep results, with its margin and bracket.

    Args:
        rows: one per sweep run, with ``cell``, ``trial`` (factor -> value), ``seed``,
            ``status``, ``metric`` (``accuracy`` or ``mse``) and ``val_metric``.
        choices: the study's candidate lists (factor -> values, before any extension); they
            order names for the tie rule and tell extended values from the study's.
        extend: extension steps allowed per side of a numeric factor's list.

    Returns:
        cell -> ``{"chosen": trial, "metric", "margin": validation metric of the chosen
        trial minus the runner-up's (oriented: >= 0; None where the runner-up failed on a
        seed, or no other trial), "runner_up": trial, "bracket": {numeric factor: one of
        BRACKETS or PENDING}, "extend": {factor: side} (what to sweep next), "trials":
        [{"trial", "val_metric" (mean over the trial's finished runs, NaN if none),
        "failed" (runs that diverged or failed), "runs"}]}``.
    """
    cells: dict[str, dict[str, list]] = {}
    metrics: dict[str, str] = {}
    trials: dict[str, dict[str, Any]] = {}
    for row in rows:
        metric = row["metric"]
        if metrics.setdefault(row["cell"], metric) != metric:
            raise ValueError(f"cell {row['cell']}: sweep runs disagree on the metric")
        name = trial_name(row["trial"])
        trials[name] = dict(row["trial"])
        score = sweep_score(metric, row["status"], row.get("val_metric"))
        cells.setdefault(row["cell"], {}).setdefault(name, []).append((score, row.get("val_metric")))
    chosen = {}
    for cell, by_trial in sorted(cells.items()):
        cell_trials = {name: trials[name] for name in by_trial}
        orders = _value_orders(cell_trials, choices)
        rank = {name: tuple(orders[k].index(v) for k, v in trial.items()) for name, trial in cell_trials.items()}
        order = sorted(by_trial, key=lambda name: rank[name])
        means = {name: sum(s for s, _ in runs) / len(runs) for name, runs in by_trial.items()}
        best = max(order, key=lambda name: (means[name], [-i for i in rank[name]]))
        rest = [name for name in order if name != best]
        runner_up = max(rest, key=lambda name: (means[name], [-i for i in rank[name]])) if rest else None
        margin = means[best] - means[runner_up] if runner_up is not None else math.nan
        brackets, sides = {}, {}
        for key, values in orders.items():
            if not is_numeric(values):
                continue
            brackets[key], side = _bracket(key, best, means, cell_trials, values,
                                           (choices or {}).get(key), extend)
            if side is not None:
                sides[key] = side
        chosen[cell] = {
            "chosen": trials[best],
            "metric": metrics[cell],
            "margin": margin if math.isfinite(margin) else None,
            "runner_up": trials[runner_up] if runner_up is not None else None,
            "bracket": brackets,
            "extend": sides,
            "trials": [{"trial": trials[name], "val_metric": _mean(v for s, v in by_trial[name] if not math.isinf(s)),
                        "failed": sum(math.isinf(s) for s, _ in by_trial[name]), "runs": len(by_trial[name])}
                       for name in order],
        }
    return chosen


def extension_trials(choice: dict[str, Any], factors: Sequence[str]) -> list[dict[str, Any]]:
    """The trials a cell is swept at next (``choice``: one cell of ``select_trials``): per
    factor to extend, the cell's best trial with that factor's value one step beyond the end
    it chose (the other factors as chosen: the extension asks whether the chosen setting does
    better past the end); keys in the study's order, ``factors``."""
    values = {key: sorted({t["trial"][key] for t in choice["trials"]}) for key in choice["extend"]}
    return [{key: (extension_value(values[key], side) if key == extended else choice["chosen"][key]) for key in factors}
            for extended, side in choice["extend"].items()]


def brackets_text(choice: dict[str, Any]) -> str:
    """A cell's brackets as one word per numeric factor (``interior``; ``lr edge, x interior``)."""
    items = choice.get("bracket", {})
    if len(items) == 1:
        return next(iter(items.values()))
    return ", ".join(f"{key} {value}" for key, value in items.items())


def _mean(values: Iterable[float | None]) -> float:
    finite = [v for v in values if v is not None]
    return sum(finite) / len(finite) if finite else math.nan


def sweep_row(entry: dict[str, Any], record: os.PathLike | str) -> dict[str, Any]:
    """One sweep run's row for ``select_trials``: its manifest entry and validation result (a
    record that cannot be read counts as failed)."""
    info = records.read_info(record) or {}
    return {"cell": entry["cell"], "trial": entry["trial"], "seed": entry["seed"],
            "status": info.get("status", "failed"), "metric": info.get("metric", "accuracy"),
            "val_metric": info.get("val_metric")}


def sweep_rows(manifests: list[str]) -> list[dict[str, Any]]:
    """The sweep runs listed by batch manifests, with their validation results."""
    return [sweep_row(entry, record_path(manifest, entry)) for manifest in manifests
            for entry in read_json(manifest)["runs"]]


def describe(chosen: dict[str, dict[str, Any]]) -> list[str]:
    """One line per cell: the choice, its margin and bracket, and every trial's score."""
    lines = []
    for cell, choice in chosen.items():
        scores = "; ".join(f"{trial_name(t['trial'])}: {t['val_metric']:.4g} ({t['failed']}/{t['runs']} failed)"
                           for t in choice["trials"])
        margin = "n/a" if choice["margin"] is None else f"{choice['margin']:.4g}"
        lines.append(f"{cell}: chose {trial_name(choice['chosen'])} (margin {margin}, {brackets_text(choice)}) [{scores}]")
    return lines

"""Per-cell selection of training settings on a validation split: ``python -m gradatlas.workflow.tuning``.

A tuned study (``tune:`` in its study file, e.g. ``tune: {lr: [0.01, 0.03, 0.1]}``) first
trains sweep runs: every cell at each candidate (a *trial*: one value per tuned factor),
with sweep seeds of their own and the last ``data.n_val`` training examples held out. Each
cell's own runs then train with the trial whose sweep runs reach the best mean validation
metric. The test split plays no part in the choice.

Rule: accuracy is maximised, MSE minimised; a sweep run that diverged or failed scores the
worst possible value (so a trial that diverges on any sweep seed loses to one that does
not); ties go to the trial listed first in the study file (list learning rates from small to
large, so that ties go to the conservative choice).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any, Iterable

from gradatlas.core.exit_status import EXIT_BAD_INPUT
from gradatlas.core.files import RecordError, read_json, write_json_atomic
from gradatlas.run import records
from gradatlas.workflow.manifests import record_path

HIGHER_IS_BETTER = {"accuracy": True, "mse": False}


def sweep_score(metric: str, status: str, value: float | None) -> float:
    """One sweep run's validation score, oriented so that larger is better."""
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    if status != "ok" or value is None or not math.isfinite(value):
        return -math.inf
    return sign * value


def trial_name(trial: dict[str, Any]) -> str:
    """A trial as text, e.g. ``lr=0.01,init=he_normal``."""
    return ",".join(f"{key}={value!r}" for key, value in trial.items())


def select_trials(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Choose one trial per cell from sweep results.

    Args:
        rows: one per sweep run, in the study's trial order, with ``cell``, ``trial`` (factor
            -> value), ``seed``, ``status``, ``metric`` (``accuracy`` or ``mse``) and
            ``val_metric``.

    Returns:
        cell -> ``{"chosen": trial, "metric": name, "trials": [{"trial", "val_metric" (mean
        over the trial's finished runs, NaN if none), "failed" (runs that diverged or
        failed), "runs"}]}``.
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
        means = {name: sum(s for s, _ in runs) / len(runs) for name, runs in by_trial.items()}
        order = list(by_trial)
        # The best mean; among equals the trial listed first.
        best = max(order, key=lambda name: (means[name], -order.index(name)))
        chosen[cell] = {
            "chosen": trials[best],
            "metric": metrics[cell],
            "trials": [{"trial": trials[name], "val_metric": _mean(v for s, v in runs if not math.isinf(s)),
                        "failed": sum(math.isinf(s) for s, _ in runs), "runs": len(runs)}
                       for name, runs in by_trial.items()],
        }
    return chosen


def _mean(values: Iterable[float | None]) -> float:
    finite = [v for v in values if v is not None]
    return sum(finite) / len(finite) if finite else math.nan


def sweep_rows(manifests: list[str]) -> list[dict[str, Any]]:
    """The sweep runs listed by batch manifests, with their validation results."""
    rows = []
    for manifest in manifests:
        for entry in read_json(manifest)["runs"]:
            info = records.read_info(record_path(manifest, entry)) or {}
            rows.append({"cell": entry["cell"], "trial": entry["trial"], "seed": entry["seed"],
                         "status": info.get("status", "failed"), "metric": info.get("metric", "accuracy"),
                         "val_metric": info.get("val_metric")})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: sweep manifests in, the study's chosen learning rates out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", nargs="+", required=True, help="the study's sweep batch manifests")
    parser.add_argument("--out", required=True, help="output: <results>/<scale>/tuning/<study>.json")
    args = parser.parse_args(argv)
    try:
        chosen = select_trials(sweep_rows(args.manifests))
    except (RecordError, KeyError, ValueError) as err:
        print(f"gradatlas.workflow.tuning: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    write_json_atomic(args.out, {"cells": chosen})
    for cell, choice in chosen.items():
        scores = "; ".join(f"{trial_name(t['trial'])}: {t['val_metric']:.4g} ({t['failed']} failed)" for t in choice["trials"])
        print(f"{cell}: chose {trial_name(choice['chosen'])} [{scores}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

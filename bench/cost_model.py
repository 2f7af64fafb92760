"""Fit the coefficients of ``gradatlas.workflow.costs`` to measured run times.

    python bench/cost_model.py RUNS_ROOT [--out bench/results/cost_model.json]

RUNS_ROOT is a ``results/<scale>/runs`` tree (e.g. one kept by
``pipeline_efficiency.py --keep``). Every run that finished (``status: ok``; diverged runs
stop early) gives one equation

    wall_time_s = START + S * PER_STEP + S * units * PER_UNIT[model],   S = steps + eval passes

solved by least squares with all coefficients kept >= 0. Absolute, not relative, error:
batching adds the costs of many runs, and a batch's total is what must come out right. It prints
the constants to put in ``src/gradatlas/costs.py`` and how well the current and the fitted
constants predict each study's total, which is what batching needs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from gradatlas.run import records
from gradatlas.run.config import load_run_config, total_steps
from gradatlas.workflow import costs

MODELS = tuple(costs.PER_UNIT)


def load(root: Path) -> list[dict]:
    """One row per finished run: study, model, features of the cost model, measured time."""
    rows = []
    for info_path in sorted(root.glob("**/run.json")):
        record = records.read_run_record(info_path.parent)
        if record.info["status"] != "ok":
            continue
        cfg = load_run_config({k: v for k, v in record.config.items()})
        rows.append({
            "study": info_path.relative_to(root).parts[0],
            "model": cfg.model.name,
            "S": total_steps(cfg, cfg.data.n_train) + costs.eval_passes(cfg),
            "units": costs.units(cfg),
            "seconds": float(record.info["wall_time_s"]),
            "current": costs.estimated_seconds(cfg),
        })
    return rows


def fit(rows: list[dict]) -> dict[str, float]:
    """Non-negative least squares on absolute error."""
    design = np.array([[1.0, r["S"]] + [r["S"] * r["units"] * (r["model"] == m) for m in MODELS] for r in rows])
    seconds = np.array([r["seconds"] for r in rows])
    coef, _ = nnls(design, seconds)
    return {"START": coef[0], "PER_STEP": coef[1], **{f"PER_UNIT[{m}]": c for m, c in zip(MODELS, coef[2:])}}


def predict(row: dict, c: dict[str, float]) -> float:
    """The cost model with coefficients ``c``."""
    return c["START"] + row["S"] * (c["PER_STEP"] + row["units"] * c[f"PER_UNIT[{row['model']}]"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_root", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/cost_model.json")
    args = parser.parse_args()
    rows = load(args.runs_root)
    if not rows:
        print(f"no finished runs under {args.runs_root}", file=sys.stderr)
        return 1
    coef = fit(rows)
    by_study: dict[str, dict[str, float]] = {}
    for row in rows:
        entry = by_study.setdefault(row["study"], {"runs": 0, "measured_s": 0.0, "current_s": 0.0, "fitted_s": 0.0})
        entry["runs"] += 1
        entry["measured_s"] += row["seconds"]
        entry["current_s"] += row["current"]
        entry["fitted_s"] += predict(row, coef)
    relative = [abs(predict(r, coef) / r["seconds"] - 1) for r in rows]
    result = {
        "runs_root": str(args.runs_root),
        "runs": len(rows),
        "coefficients": coef,
        "median_abs_relative_error": float(np.median(relative)),
        "p90_abs_relative_error": float(np.quantile(relative, 0.9)),
        "by_study": by_study,
    }
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

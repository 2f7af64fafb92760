"""Claim 15: mean-field theory predicts the per-layer gradient factor at initialization."""

from __future__ import annotations

import numpy as np

from gradatlas.analysis import intervals, theory
from gradatlas.analysis.claims.claim import Claim
from gradatlas.analysis.claims.parts import Part, median_part, missing
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import below

STUDY = "meanfield"
# The median relative error of the measured factor against sqrt(chi_1) that supports.
THEORY_TOLERANCE = Threshold("THEORY_TOLERANCE", 0.10, "relative error of the prediction that supports", 0.01, 0.5, log=True)
# The fewest runs whose order statistics reach the interval's confidence (fewer: no interval).
MEDIAN_MIN_RUNS = next(n for n in range(1, 64) if np.isfinite(intervals.median_interval(np.arange(n, dtype=float))[1]))
THRESHOLDS = (THEORY_TOLERANCE,)


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """The median relative error over runs, from the fixed point (decisive) and from the measured variances."""
    runs = t.select(STUDY)
    name = "median |measured - sqrt(chi_1)| / sqrt(chi_1) over runs"
    if runs.empty:
        return [missing(name, f"no {STUDY} runs")]
    arrays = {}
    flagged = 0
    for r in runs["run"]:
        arrays[r], count = t.fit_layers(r)
        flagged += count
    table = theory.theory_table_from_arrays(runs, arrays)
    if table.empty:
        return [missing(name, "no measurable factors")]
    note = f"{flagged} underflowing layer(s) left out of the fits" if flagged else ""
    errors = table["rel_error"].astype(float).to_numpy()
    parts = [median_part(name, errors, below(th.THEORY_TOLERANCE), note=note)]
    layerwise = (table["measured_factor"] - table["predicted_factor_layerwise"]).abs() / table["predicted_factor_layerwise"]
    parts.append(median_part("same, prediction from the measured layer variances",
                             layerwise.astype(float).to_numpy(), below(th.THEORY_TOLERANCE), decisive=False))
    return parts


CLAIM = Claim(
    15, "Mean-field theory predicts the gradient factor",
    "Mean-field theory predicts the per-layer gradient factor at initialization (sqrt of chi_1 = "
    "sigma_w^2 E[phi'(z)^2] at the fixed point).",
    (STUDY,),
    "median relative error of the measured per-layer factor against sqrt(chi_1)",
    f"Supported if the {intervals.CONFIDENCE:.0%} distribution-free interval of the median relative error (order "
    f"statistics over runs; none below {MEDIAN_MIN_RUNS} runs) lies below {THEORY_TOLERANCE}; contradicted if it "
    f"lies above {THEORY_TOLERANCE}. The prediction from the measured layer variances is reported, not voted.",
    compute, THRESHOLDS)

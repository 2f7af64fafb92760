"""Claim 15: mean-field theory predicts the per-layer gradient factor at initialization.

The theory as Poole et al. (2016) state it: the length map iterated from each example's own
input variance through the network's depth, the gradient propagated back along each example's
trajectory, and the batch mean of the per-example gradient norm that the probes record fitted
like the measurement (``theory.length_map``; the theory table's ``predicted_factor_per_example``).
Every cell is judged: per activation, the sub-claim holds only if the prediction is within
``TOL`` of the measurement in every one of its cells. The fixed-point predictor sqrt(chi_1(q*))
is judged where the iteration says it applies (regime ``at fixed point``); its errors and
regimes elsewhere are reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradatlas.analysis import intervals, theory
from gradatlas.analysis.claims.claim import Claim
from gradatlas.analysis.claims.parts import Part, fmt, join_notes, missing
from gradatlas.analysis.claims.summary import Tables, per_tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import verdict_below
from gradatlas.analysis.theory.length_map import AT_FIXED_POINT

STUDY = "meanfield"
# About four times the seed spread of the measured factor: its relative standard deviation
# over seeds is 0.1-0.7 % in the full scale's cells (median ~0.3 %), and the finite-width
# Monte Carlo of tests/test_length_map.py agrees with the prediction to within that spread.
TOL = Threshold("TOL", 0.02, "relative error |measured - predicted| / predicted of a run that counts as predicted",
                0.005, 0.1, log=True)
THRESHOLDS = (TOL,)
WORST_CELL = "every cell: worst cell's median [its smallest seed, largest run]"


def worst_cell_part(name: str, errors: pd.Series, cells: pd.Series, tolerance: float, *, note: str = "",
                    decisive: bool = True) -> Part:
    """'Within ``tolerance`` in every cell': value = the largest cell median of the per-run
    relative errors; low = the largest cell minimum (some cell has every seed above it), high =
    the largest error of any run. Supported if high < tolerance (every run within), contradicted
    if low > tolerance (some cell misses with every seed), else inconclusive. Draws resample the
    seeds within each cell."""
    frame = pd.DataFrame({"error": errors.astype(float).to_numpy(), "cell": cells.astype(str).to_numpy()})
    frame = frame[np.isfinite(frame["error"])]
    if frame.empty:
        return missing(name, "no runs with a prediction", decisive)
    groups = [g.to_numpy() for _, g in frame.groupby("cell", sort=True)["error"]]
    medians = np.array([np.median(g) for g in groups])
    value, low, high = float(medians.max()), float(max(g.min() for g in groups)), float(frame["error"].max())
    worst = sorted(frame["cell"].unique())[int(np.argmax(medians))]

    def draws(rng: np.random.Generator, count: int, confidence: float = 0.95) -> np.ndarray:
        lows, highs = np.full(count, -np.inf), np.full(count, -np.inf)
        for g in groups:
            drawn = g[rng.integers(0, len(g), size=(count, len(g)))]
            lows, highs = np.maximum(lows, drawn.min(axis=1)), np.maximum(highs, drawn.max(axis=1))
        return verdict_below(lows, highs, tolerance)

    # A statement about the runs observed (their range, no sampling interval): exact for the
    # family adjustment.
    return Part(name, value, low, high, len(frame), str(verdict_below(low, high, tolerance)),
                join_notes(f"worst cell {worst}", WORST_CELL, note), decisive, intervals.EXACT, draws)


def _regimes(rows: pd.DataFrame) -> str:
    """'cell: median fixed-point error (regime)' per cell (the regime most of its seeds have)."""
    return "; ".join(f"{cell}: {fmt(float(part['rel_error'].median()))} ({part['regime'].mode().iloc[0]})"
                     for cell, part in rows.groupby("cell", sort=True))


@per_tables
def _theory_table(t: Tables) -> tuple[pd.DataFrame, int]:
    """The theory table of the study's runs (``theory.theory_table_from_arrays``), underflowing
    layers left out of the fits, and how many were (once per summary: about 1 s)."""
    runs = t.select(STUDY)
    arrays, flagged = {}, 0
    for r in runs["run"]:
        arrays[r], count = t.fit_layers(r)
        flagged += count
    return theory.theory_table_from_arrays(runs, arrays), flagged


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per activation: the per-example prediction in every cell (decisive), the fixed-point
    prediction in the cells at the fixed point (decisive) and where it misses (informational)."""
    runs = t.select(STUDY)
    name = "per-example prediction within TOL in every cell"
    if runs.empty:
        return [missing(name, f"no {STUDY} runs")]
    table, flagged = _theory_table(t)
    if table.empty:
        return [missing(name, "no measurable factors")]
    note = f"{flagged} underflowing layer(s) left out of the fits" if flagged else ""
    parts: list[Part] = []
    for act, rows in table.groupby("activation", sort=True):
        predicted = rows[np.isfinite(rows["predicted_factor_per_example"].astype(float))]
        if predicted.empty:
            parts.append(missing(f"{act}: {name}", "the runs did not record input_sq_norm (probe.input_norms)"))
        else:
            parts.append(worst_cell_part(f"{act}: {name}", predicted["rel_error_per_example"], predicted["cell"],
                                         th.TOL, note=note))
        at_fixed = rows[rows["regime"] == AT_FIXED_POINT]
        if len(at_fixed):
            parts.append(worst_cell_part(f"{act}: fixed-point prediction within TOL in every cell at the fixed point",
                                         at_fixed["rel_error"], at_fixed["cell"], th.TOL))
        elsewhere = predicted[predicted["regime"] != AT_FIXED_POINT]
        if len(elsewhere):
            parts.append(worst_cell_part(f"{act}: fixed-point prediction in the cells the iteration does not bring "
                                         f"to q*", elsewhere["rel_error"], elsewhere["cell"], th.TOL,
                                         note=_regimes(elsewhere), decisive=False))
    return parts


CLAIM = Claim(
    15, "Mean-field theory predicts the gradient factor",
    "Mean-field theory predicts the per-layer gradient factor at initialization in every cell, iterated as "
    "stated: the length map from each example's input variance through the depth, chi = sigma_w^2 "
    "E[phi'(sqrt(q_l) z)^2] along it, the batch mean of the per-example gradient norms fitted like the "
    "measurement; sqrt(chi_1) at the fixed point q* where the iteration reaches it.",
    (STUDY,),
    "per activation: the worst cell's relative error of the per-example prediction",
    f"Per activation: supported if every run of every cell has |measured - predicted| / predicted below TOL = "
    f"{TOL} (TOL: about four times the seeds' relative spread of the measured factor), contradicted if in "
    f"some cell every seed is above it, else inconclusive; the same for the fixed-point prediction over the "
    f"cells whose regime (length_map.classify: two regimes, at fixed point, slow critical approach, fixed point "
    f"not reached) is 'at fixed point'. The fixed-point errors of the other cells are reported with their regime.",
    compute, THRESHOLDS)

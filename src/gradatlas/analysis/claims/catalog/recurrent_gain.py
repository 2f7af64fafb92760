"""Claim 19: the recurrent gain sets vanishing against exploding through time (Pascanu et al. 2013)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gradatlas.analysis import theory
from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import by_seed
from gradatlas.analysis.claims.parts import Part, join_notes, missing, seed_part
from gradatlas.analysis.claims.summary import Tables, per_tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, below, reported, within

STUDY = "clipping_rnn"
CROSSING_TOLERANCE = Threshold("CROSSING_TOLERANCE", 0.03, "largest gain difference between the measured and the "
                               "predicted crossing of factor 1", 0.005, 0.2, log=True)
FACTOR_BOUND = Threshold("FACTOR_BOUND", 1.0, "per-step factor between shrinking and growing", 0.9, 1.1, log=True)
THRESHOLDS = (CROSSING_TOLERANCE, FACTOR_BOUND)


@per_tables
def _cells(t: Tables) -> pd.DataFrame:
    """The study's tanh RNN runs at step 0, one per seed and gain (clipping changes nothing before
    the first update: the unclipped runs where there are any), with their measured factor (once
    per summary; a caller must not change it)."""
    runs = t.select(STUDY, model="rnn", activation="tanh")
    if runs.empty:
        return runs
    if (runs["clip"] == "none").any():
        runs = runs[runs["clip"] == "none"]
    runs = runs.copy()
    runs["factor"] = [theory.time_factor_fit(t.timesteps_of(r), 0)["factor"] for r in runs["run"]]
    return runs


def predicted_factor_of_gain(runs: pd.DataFrame):
    """The mean-field factor as a function of the gain for the study's setting (one setting)."""
    first = runs.iloc[0]
    init_std = first.get("init_std", 0.01)
    bias = first.get("bias", None)
    return theory.rnn_factor_of_gain("tanh", str(first["init"]), float(first["width"]), str(first["data"]),
                                     int(first["length"]), init_std, None if theory.is_missing(bias) else bias)


def measured_crossing(gains: np.ndarray, factors: np.ndarray) -> float:
    """The gain at which one seed's factor first crosses 1 from below, interpolated linearly in
    log factor between the two gains around it (NaN without such a pair)."""
    order = np.argsort(gains)
    g, logs = np.asarray(gains, float)[order], np.log(np.asarray(factors, float)[order])
    ok = np.isfinite(logs)
    g, logs = g[ok], logs[ok]
    change = np.nonzero((logs[:-1] < 0) & (logs[1:] >= 0))[0]
    if not len(change):
        return math.nan
    i = int(change[0])
    return float(g[i] + (g[i + 1] - g[i]) * -logs[i] / (logs[i + 1] - logs[i]))


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """The crossing against the mean field; no growth at g <= 1; growth above the predicted crossing."""
    runs = _cells(t)
    if runs.empty or not {"data", "length", "width", "init"} <= set(runs) or \
            str(runs["data"].iloc[0]) not in theory.INPUT_POWER:
        return [missing("per-step factor against the recurrent gain", f"no tanh RNN runs of {STUDY} on a known task")]
    predicted, crossings, predicted_at = _predictions(t)
    unmeasured = sum(math.isnan(v) for v in crossings.values())
    note = f"{unmeasured} seed(s) whose factor does not cross 1 within the gains" if unmeasured else ""
    parts = [seed_part(f"crossing of factor 1: measured - predicted gain (predicted {predicted:.3f})",
                       pd.Series(crossings, dtype=float) - predicted, within(th.CROSSING_TOLERANCE), note=note,
                       absent="needs gains on both sides of the crossing")]
    low = runs[runs["gain"] <= 1.0]
    if low.empty:
        parts.append(missing("g <= 1: per-step factor below 1", "no cell with gain <= 1"))
    for gain, cell in low.groupby("gain"):
        parts.append(seed_part(f"g = {gain:g} <= 1: per-step factor (vanishing)", by_seed(cell, cell["factor"]),
                               below(th.FACTOR_BOUND), log=True))
    high = runs[runs["gain"] > predicted + th.CROSSING_TOLERANCE] if math.isfinite(predicted) else runs.iloc[0:0]
    if high.empty:
        parts.append(missing("g above the predicted crossing: per-step factor above 1",
                             f"no cell with gain above {predicted:.3f} + {th.CROSSING_TOLERANCE:g}"))
    for gain, cell in high.groupby("gain"):
        parts.append(seed_part(f"g = {gain:g} > 1, above the crossing: per-step factor (exploding)",
                               by_seed(cell, cell["factor"]), above(th.FACTOR_BOUND), log=True))
    for gain, cell in runs.groupby("gain"):
        ratio = cell["factor"] / predicted_at[float(gain)]
        parts.append(seed_part(f"g = {gain:g}: measured / mean-field factor", by_seed(cell, ratio), reported,
                               log=True, decisive=False,
                               note=join_notes(f"predicted {predicted_at[float(gain)]:.4f}")))
    return parts


@per_tables
def _predictions(t: Tables) -> tuple[float, dict, dict[float, float]]:
    """The predicted crossing gain, each seed's measured crossing, and the mean-field factor at
    each gain of ``_cells`` (root finding and the mean field over time: once per summary)."""
    runs = _cells(t)
    factor_of_gain = predicted_factor_of_gain(runs)
    crossings = {seed: measured_crossing(cell["gain"].to_numpy(float), cell["factor"].to_numpy(float))
                 for seed, cell in runs.groupby("seed")}
    return (theory.crossing_gain(factor_of_gain), crossings,
            {float(gain): factor_of_gain(float(gain)) for gain in runs["gain"].unique()})


CLAIM = Claim(
    19, "The recurrent gain sets vanishing vs exploding",
    "In a vanilla tanh RNN with orthogonal recurrent weights of gain g (largest singular value g), g <= 1 is "
    "sufficient for vanishing gradients through time and exploding needs g > 1; with the task's input drive "
    "the per-step factor of ||dL/dh_t|| crosses 1 above g = 1, where the mean field over time predicts.",
    (STUDY,),
    "per-step factor of ||dL/dh_t|| at initialization against the gain; its crossing of 1",
    rule_text(f"Study {STUDY}, step 0, tanh, one run per seed and gain (unclipped). The measured factor is "
              f"exp(-slope) of log ||dL/dh_t|| against t (float32 underflow left out); the prediction is the "
              f"mean field over time with the input drive (theory.rnn_factor_of_gain), its crossing of 1 found by "
              f"root finding. Crossing: per seed, the gain where the factor first crosses 1 (linear in log factor "
              f"between neighbouring gains) minus the predicted one; supported if its interval lies within "
              f"+-{CROSSING_TOLERANCE:g}, contradicted if it lies outside. Vanishing: in every cell with g <= 1 the "
              f"factor's interval lies below {FACTOR_BOUND:g} (contradicted if above). Exploding needs g > 1: in "
              f"every cell with g above the predicted crossing + {CROSSING_TOLERANCE:g} the interval lies above "
              f"{FACTOR_BOUND:g} (contradicted if below). The per-cell ratio to the mean field is reported."),
    compute, THRESHOLDS)

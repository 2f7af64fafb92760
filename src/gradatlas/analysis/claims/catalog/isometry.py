"""Claim 17: the spread of the Jacobian spectrum grows linearly with depth at the slope free
probability predicts; orthogonal weights keep linear and critical tanh nets near isometry; and
so, at equal depth and each at its tuned learning rate, they reach a training loss in fewer
steps than Gaussian weights (study isometry_training)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gradatlas.analysis import theory
from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.parts import Part, fmt, missing, seed_part, welch_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, below, within

STUDY = "isometry"
TRAINING_STUDY = "isometry_training"
GAUSSIAN, ORTHOGONAL = INITS_TRAINING = ("lecun_normal", "orthogonal")
# The training loss is a minibatch's: its trailing mean over this many steps is what must reach
# LOSS_LEVEL (one minibatch of 128 scatters by about 0.1 nats at these losses).
LOSS_WINDOW = 20
# The cases of the claim: (activation, gain) at criticality with zero biases (tanh at
# sigma_w^2 = 1 has chi_1 = 1 at q* = 0), each with i.i.d. Gaussian and orthogonal weights.
CRITICAL = (("linear", 1.0), ("tanh", 1.0), ("relu", math.sqrt(2.0)))
INITS = ("lecun_normal", "orthogonal")
# Stay near isometry (orthogonal weights, per Pennington et al.); every other case spreads.
ISOMETRIC = (("orthogonal", "linear"), ("orthogonal", "tanh"))

SLOPE_RTOL = Threshold("SLOPE_RTOL", 0.15, "largest relative distance of the measured slope of Var/E^2 over depth "
                       "from the wide-limit one: the shortfall of a simulation at the study's width and L = n/4 "
                       "(tests/test_spectra.py) plus the seeds' spread", 0.05, 0.5, log=True)
SLOPE_ATOL = Threshold("SLOPE_ATOL", 0.02, "absolute slack of the slope per layer where the predicted slope is near 0 "
                       "(orthogonal linear 0, orthogonal tanh at q* = 0 about 0.01)", 0.005, 0.1, log=True)
ISOMETRY_SPREAD = Threshold("ISOMETRY_SPREAD", 0.1, "Var/E^2 at the deepest depth per layer of it, below which a net "
                            "stays near isometry (i.i.d. weights add at least 1 per layer)", 0.03, 0.5, log=True)
LOSS_LEVEL = Threshold("LOSS_LEVEL", 2.0, "training loss (nats; chance ln 10 = 2.30) whose first reach, by the "
                       f"trailing mean over {LOSS_WINDOW} steps, times training", 1.8, 2.2)
FASTER = Threshold("FASTER", 1.0, "ratio of the steps orthogonal and Gaussian nets take to LOSS_LEVEL (geometric "
                   "means) below which the orthogonal ones are faster", 0.5, 1.0)
THRESHOLDS = (SLOPE_RTOL, SLOPE_ATOL, ISOMETRY_SPREAD, LOSS_LEVEL, FASTER)


def slope(depths: np.ndarray, values: np.ndarray) -> float:
    """Least-squares slope of ``values`` over ``depths`` (NaN below two depths)."""
    if len(depths) < 2 or np.ptp(depths) == 0:
        return math.nan
    return float(np.polyfit(depths.astype(float), values.astype(float), 1)[0])


def per_run(spectra: pd.DataFrame) -> pd.DataFrame:
    """Per run: the measured and predicted slope of Var/E^2 over the recorded depths, and
    Var/E^2 per layer at the deepest one."""
    rows = []
    for run, part in spectra.groupby("run", sort=True):
        part = part.sort_values("jacobian_depth")
        depths = part["jacobian_depth"].to_numpy()
        deepest = part.iloc[-1]
        rows.append({"run": run, "seed": deepest["seed"], "init": deepest["init"],
                     "activation": deepest["activation"], "gain": float(deepest["gain"]),
                     "slope": slope(depths, part["normalized_variance"].to_numpy()),
                     "predicted_slope": slope(depths, part["predicted_normalized_variance"].to_numpy()),
                     "deepest": int(deepest["jacobian_depth"]),
                     "spread_per_layer": float(deepest["normalized_variance"]) / float(deepest["jacobian_depth"])})
    return pd.DataFrame(rows)


def case_runs(table: pd.DataFrame, init: str, activation: str, gain: float) -> pd.DataFrame:
    """The rows of one case of ``per_run``'s table."""
    if table.empty:
        return table
    return table[(table["init"] == init) & (table["activation"] == activation) & np.isclose(table["gain"], gain)]


def steps_to_loss(steps: pd.DataFrame, level: float, budget: float) -> float:
    """The first step at which the trailing mean of the training loss over ``LOSS_WINDOW`` steps
    is at most ``level``; ``budget`` + 1 where it never is (a diverged run included)."""
    if steps.empty:
        return budget + 1.0
    ordered = steps.sort_values("step")
    trailing = ordered["loss"].astype(float).rolling(LOSS_WINDOW, min_periods=LOSS_WINDOW).mean().to_numpy()
    hits = np.flatnonzero(np.isfinite(trailing) & (trailing <= level))
    return float(ordered["step"].iloc[hits[0]]) if len(hits) else budget + 1.0


def speed_parts(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per activation of isometry_training: log(steps to LOSS_LEVEL), orthogonal minus Gaussian
    weights (Welch over seeds), below log FASTER."""
    runs = t.select(TRAINING_STUDY)
    name = "training speed: log(steps to LOSS_LEVEL), orthogonal - Gaussian weights"
    if runs.empty:
        return [missing(name, f"no {TRAINING_STUDY} runs")]
    if t.steps.empty:
        return [missing(name, "the summary holds no step tables")]
    parts = []
    for activation, cells in runs.groupby("activation", sort=True):
        logs, notes = {}, []
        for init in INITS_TRAINING:
            mine = cells[cells["init"] == init]
            counts = [steps_to_loss(t.steps_of(r.run), th.LOSS_LEVEL, float(r.steps)) for r in mine.itertuples()]
            never = sum(c > float(r.steps) for c, r in zip(counts, mine.itertuples()))
            logs[init] = np.log(np.asarray(counts, dtype=float))
            lrs = ", ".join(fmt(v) for v in sorted(mine["lr"].dropna().unique()))
            notes.append(f"{init}: geometric mean {fmt(float(np.exp(logs[init].mean()))) if len(mine) else 'nan'} "
                         f"steps at lr {lrs}" + (f", {never} of {len(mine)} never reached it" if never else ""))
        parts.append(welch_part(f"{activation}: {name}", logs[ORTHOGONAL], logs[GAUSSIAN],
                                below(math.log(th.FASTER)), note="; ".join(notes)))
    return parts


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per case: the slope against the prediction, and near isometry or spread at the deepest depth;
    per activation of the training study: the steps to a training loss."""
    return spectra_parts(t, th) + speed_parts(t, th)


def spectra_parts(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per case: the slope against the prediction, and near isometry or spread at the deepest depth."""
    runs = t.select(STUDY)
    if runs.empty:
        return [missing("slope of Var/E^2 of the squared singular values over depth", f"no {STUDY} runs")]

    def spectra() -> pd.DataFrame:
        return per_run(theory.spectra_table(runs, t.layers[t.layers["run"].isin(list(runs["run"]))]))

    table = t.derived((STUDY, "spectra"), spectra)
    parts: list[Part] = []
    for init in INITS:
        for activation, gain in CRITICAL:
            case = case_runs(table, init, activation, gain)
            label = f"{init}/{activation} (gain {gain:.3g})"
            if case.empty:
                parts.append(missing(f"{label}: measured - predicted slope of Var/E^2 over depth", "cells absent"))
                continue
            predicted = float(case["predicted_slope"].mean())
            tolerance = th.SLOPE_RTOL * abs(predicted) + th.SLOPE_ATOL
            parts.append(seed_part(
                f"{label}: measured - predicted slope of Var/E^2 over depth",
                (case["slope"] - case["predicted_slope"]).to_numpy(), within(tolerance),
                note=f"predicted slope {predicted:.3g} per layer, tolerance {tolerance:.3g}; depths up to "
                     f"{int(case['deepest'].max())}"))
            isometric = (init, activation) in ISOMETRIC
            parts.append(seed_part(
                f"{label}: Var/E^2 per layer at the deepest depth ({'near isometry' if isometric else 'spreads'})",
                case["spread_per_layer"].to_numpy(),
                below(th.ISOMETRY_SPREAD) if isometric else above(th.ISOMETRY_SPREAD),
                note=f"depth {int(case['deepest'].max())}"))
    return parts


CLAIM = Claim(
    17, "Jacobian spectra: dynamical isometry",
    "At initialization the variance of the squared singular values of the hidden-to-hidden Jacobian (over their "
    "squared mean) grows linearly with depth at the free-probability slope mu_2/mu_1^2 - 1 - s_1 (s_1 = -1 for "
    "Gaussian, 0 for orthogonal weights) for linear, critical tanh and critical ReLU nets; orthogonal weights keep "
    "linear and tanh (q* = 0) nets near isometry while Gaussian weights and ReLU spread; and so, at equal depth and "
    "tuned learning rate, orthogonal linear and tanh nets reach a training loss in fewer steps than Gaussian ones.",
    (STUDY, TRAINING_STUDY),
    "measured - predicted slope of Var/E^2 over depth, per case; Var/E^2 per layer at the deepest depth; log steps "
    "to a training loss, orthogonal - Gaussian",
    rule_text(f"Per case ({', '.join(INITS)} x linear, tanh at gain 1, relu at gain sqrt 2) of {STUDY}: the "
              f"least-squares slope of each input's Var/E^2 (averaged over inputs) over the recorded depths, minus the "
              f"prediction's slope fitted the same way (the length map iterated from the measured first layer), must "
              f"lie within {SLOPE_RTOL:g} x |predicted| + {SLOPE_ATOL:g} (contradicted if the CI lies outside); "
              f"Var/E^2 per layer at the deepest depth must lie below {ISOMETRY_SPREAD:g} for orthogonal linear and "
              f"tanh and above it for the other cases (contradicted on the other side). Training speed, per "
              f"activation of {TRAINING_STUDY} (linear and tanh at sigma_w^2 = 1, each cell at its tuned SGD rate): "
              f"the steps until the trailing {LOSS_WINDOW}-step mean of the training loss first reaches "
              f"{LOSS_LEVEL:g} nats (the budget + 1 where it never does), orthogonal against Gaussian weights as a "
              f"Welch difference of log steps, must lie below log {FASTER:g} (contradicted above it)."),
    compute, THRESHOLDS)

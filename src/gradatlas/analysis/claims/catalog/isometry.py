"""Claim 17: the spread of the Jacobian spectrum grows linearly with depth at the slope free
probability predicts; orthogonal weights keep linear and critical tanh nets near isometry."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gradatlas.analysis import theory
from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.parts import Part, missing, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, below, within

STUDY = "isometry"
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
THRESHOLDS = (SLOPE_RTOL, SLOPE_ATOL, ISOMETRY_SPREAD)


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


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per case: the slope against the prediction, and near isometry or spread at the deepest depth."""
    runs = t.select(STUDY)
    if runs.empty:
        return [missing("slope of Var/E^2 of the squared singular values over depth", f"no {STUDY} runs")]
    layers = t.layers[t.layers["run"].astype(str).isin(set(runs["run"]))]
    table = per_run(theory.spectra_table(runs, layers))
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
    "linear and tanh (q* = 0) nets near isometry while Gaussian weights and ReLU spread.",
    (STUDY,),
    "measured - predicted slope of Var/E^2 over depth, per case; Var/E^2 per layer at the deepest depth",
    rule_text(f"Per case ({', '.join(INITS)} x linear, tanh at gain 1, relu at gain sqrt 2) of {STUDY}: the "
              f"least-squares slope of each input's Var/E^2 (averaged over inputs) over the recorded depths, minus the "
              f"prediction's slope fitted the same way (the length map iterated from the measured first layer), must "
              f"lie within {SLOPE_RTOL:g} x |predicted| + {SLOPE_ATOL:g} (contradicted if the CI lies outside); "
              f"Var/E^2 per layer at the deepest depth must lie below {ISOMETRY_SPREAD:g} for orthogonal linear and "
              f"tanh and above it for the other cases (contradicted on the other side). The training-speed part "
              f"(isometric nets reach a loss sooner at equal depth and tuned rate) is not tested here."),
    compute, THRESHOLDS)

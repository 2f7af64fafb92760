"""Claim 4: the weight scale sets vanishing against exploding: where the per-layer factor crosses 1
along sigma_w^2, per activation, against the mean field; and the variance-preserving inits."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from gradatlas.analysis.claims.catalog import meanfield
from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.crossing import SIGMA_W2, seed_crossings, with_sigma_w2
from gradatlas.analysis.claims.measures import deepest, layer_factors, mlp_runs
from gradatlas.analysis.claims.parts import Part, missing, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, below, between, within
from gradatlas.analysis.theory import iterated

SWEEP_STUDY = "weight_crossing"
REFERENCE_STUDY = "depth_activation_init"
FACTOR_BOUND = Threshold("FACTOR_BOUND", 1.0, "per-layer factor between shrinking and growing", 0.5, 2.0, log=True)
CROSSING_TOLERANCE = Threshold("CROSSING_TOLERANCE", 0.1, "largest relative distance |measured / predicted - 1| of "
                               "the sigma_w^2 where the factor crosses 1", 0.02, 0.3, log=True)
PRESERVING_TOLERANCE = Threshold("PRESERVING_TOLERANCE", 0.1, "largest relative distance of the preserving "
                                 "init's per-layer factor from 1", 0.03, 0.3, log=True)
# The variance-preserving init per activation (``PRESERVING_DEFAULT`` for others).
PRESERVING_INIT = {"relu": "he_normal", "leaky_relu": "he_normal", "prelu": "he_normal", "elu": "he_normal",
                   "silu": "he_normal", "gelu": "he_normal", "tanh": "xavier_normal", "sigmoid": "xavier_normal",
                   "selu": "lecun_normal", "linear": "xavier_normal"}
PRESERVING_DEFAULT = "he_normal"
THRESHOLDS = (FACTOR_BOUND, CROSSING_TOLERANCE, PRESERVING_TOLERANCE)


@lru_cache(maxsize=64)
def predicted(activation: str, sigma_w2: float, depth: int) -> float:
    """The iterated map's fitted per-layer factor (zero biases, MNIST-1D input; ``theory.iterated``)."""
    return iterated.iterated_factor(activation, sigma_w2, 0.0, iterated.MNIST1D_MEAN_SQUARE, depth)


@lru_cache(maxsize=64)
def predicted_crossing(activation: str, low: float, high: float, depth: int) -> float:
    """Where that factor first crosses 1 in [low, high] (NaN: it does not)."""
    return iterated.crossing_sigma_w2(activation, low, high, 0.0, iterated.MNIST1D_MEAN_SQUARE, depth)


def _end_part(t: Tables, th: ThresholdValues, act: str, runs, sigma_w2: float, depth: int, end: str) -> Part:
    """The factor at one end of the sweep, on the side of 1 that the theory puts it."""
    expected = predicted(act, sigma_w2, depth)
    values, note = layer_factors(t, runs[np.isclose(runs[SIGMA_W2], sigma_w2)])
    judge = above(th.FACTOR_BOUND) if expected > 1.0 else below(th.FACTOR_BOUND)
    side = "above" if expected > 1.0 else "below"
    return seed_part(f"{act}: per-layer factor at the {end} sigma_w^2 = {sigma_w2:.3g} ({side} 1 predicted: "
                     f"{expected:.3g})", values, judge, log=True, note=note, absent=f"no run at sigma_w^2 {sigma_w2:.3g}")


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per activation: the factor at both ends of the sweep, its crossing of 1 against the
    iterated mean field, and the factor with the preserving init near 1."""
    sweep = mlp_runs(t, SWEEP_STUDY, init="lecun_normal", norm="none")
    if sweep.empty:
        return [missing("per-layer factor along sigma_w^2", f"no {SWEEP_STUDY} runs")]
    sweep = with_sigma_w2(sweep)
    activations = sorted(sweep["activation"].unique(), key=lambda a: (a != "relu", a))
    parts: list[Part] = []
    for act in activations:
        runs = sweep[sweep["activation"] == act]
        depth = int(runs["depth"].max())
        low, high = float(runs[SIGMA_W2].min()), float(runs[SIGMA_W2].max())
        parts.append(_end_part(t, th, act, runs, low, depth, "smallest"))
        parts.append(_end_part(t, th, act, runs, high, depth, "largest"))
        crossing = predicted_crossing(act, low, high, depth)
        measured = seed_crossings(t, runs)
        name = f"{act}: log(measured / predicted sigma_w^2 where the factor crosses 1)"
        if math.isfinite(crossing):
            tol = math.log1p(th.CROSSING_TOLERANCE)
            parts.append(seed_part(name, np.log(measured.to_numpy() / crossing), within(tol),
                                   note=f"predicted {crossing:.3g} (map iterated through depth {depth}); "
                                        f"{int(measured.isna().sum())} seed(s) without a crossing",
                                   absent="no seed crosses 1"))
        else:
            parts.append(missing(name, f"no crossing predicted in [{low:.3g}, {high:.3g}]: the end parts decide"))
        init = PRESERVING_INIT.get(act, PRESERVING_DEFAULT)
        ref = deepest(mlp_runs(t, REFERENCE_STUDY, activation=act, init=init, norm="none"))
        f_ref, n_ref = layer_factors(t, ref)
        bound = 1.0 + th.PRESERVING_TOLERANCE
        parts.append(seed_part(f"{act}: per-layer factor with {init} ({REFERENCE_STUDY}, deepest), within "
                               f"{th.PRESERVING_TOLERANCE:g} of 1", f_ref, between(1.0 / bound, bound), log=True,
                               note=n_ref, absent=f"no {act}/{init} runs in {REFERENCE_STUDY}"))
    return parts


CLAIM = Claim(
    4, "Weight scale sets vanishing vs exploding",
    "The weight variance sets vanishing against exploding: along sigma_w^2 the per-layer gradient factor crosses 1 "
    "where the mean field (iterated through the depth) says, per activation; the variance-preserving inits (He for "
    "ReLU, Xavier for tanh/sigmoid) keep it near 1.",
    (SWEEP_STUDY, REFERENCE_STUDY),
    "measured / predicted sigma_w^2 where the per-layer factor crosses 1 (relu first; per activation in the detail)",
    rule_text(f"Per activation of {SWEEP_STUDY}: at the sweep's smallest and largest sigma_w^2 the factor's CI must "
              f"lie on the side of {FACTOR_BOUND:g} that the iterated mean field puts it (contradicted on the other "
              f"side; both below 1 where the theory predicts no crossing, as for sigmoid below its crossing); the "
              f"crossing of 1, interpolated per seed in log factor against log sigma_w^2 between grid points, must "
              f"lie within log(1 + {CROSSING_TOLERANCE:g}) of the predicted one (contradicted if the CI lies "
              f"outside); the factor with the variance-preserving init (deepest net of {REFERENCE_STUDY}) must lie "
              f"within a factor 1 + {PRESERVING_TOLERANCE:g} of 1 (contradicted if its mean lies outside). The "
              f"quantitative follow-up is claim {meanfield.CLAIM.id}."),
    compute, THRESHOLDS)

"""Claim 4: the weight scale sets vanishing against exploding; the preserving inits sit between."""

from __future__ import annotations

import math

from gradatlas.analysis.claims.catalog import meanfield
from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import deepest, layer_factors, mlp_runs
from gradatlas.analysis.claims.parts import Part, missing, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, below, between

SCALE_STUDY = "init_scale"
REFERENCE_STUDY = "depth_activation_init"
# The weight stds that explode (at least LARGE_STD) and vanish (at most SMALL_STD); the nearest
# to each bound is used.
LARGE_STD = 1.0
SMALL_STD = 0.01
FACTOR_BOUND = Threshold("FACTOR_BOUND", 1.0, "per-layer factor between shrinking and growing", 0.5, 2.0, log=True)
# The variance-preserving init per activation (``PRESERVING_DEFAULT`` for others).
PRESERVING_INIT = {"relu": "he_normal", "leaky_relu": "he_normal", "prelu": "he_normal", "elu": "he_normal",
                   "silu": "he_normal", "gelu": "he_normal", "tanh": "xavier_normal", "sigmoid": "xavier_normal",
                   "selu": "lecun_normal", "linear": "xavier_normal"}
PRESERVING_DEFAULT = "he_normal"
THRESHOLDS = (FACTOR_BOUND,)


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per activation: the factor at the large and the small std, and with the preserving init between them."""
    scale = mlp_runs(t, SCALE_STUDY, init="normal", norm="none")
    if scale.empty:
        return [missing(f"per-layer factor at std {LARGE_STD}", f"no {SCALE_STUDY} runs")]
    activations = sorted(scale["activation"].unique(), key=lambda a: (a != "relu", a))
    parts: list[Part] = []
    for act in activations:
        runs = scale[scale["activation"] == act]
        big, small = runs[runs["init_std"] >= LARGE_STD], runs[runs["init_std"] <= SMALL_STD]
        if not big.empty:
            big = big[big["init_std"] == big["init_std"].min()]
        if not small.empty:
            small = small[small["init_std"] == small["init_std"].max()]
        f_big, n_big = layer_factors(t, big)
        f_small, n_small = layer_factors(t, small)
        p_big = seed_part(f"{act}: per-layer factor at std {LARGE_STD}", f_big, above(th.FACTOR_BOUND), log=True,
                          note=n_big, absent=f"no run with std >= {LARGE_STD}")
        p_small = seed_part(f"{act}: per-layer factor at std {SMALL_STD}", f_small, below(th.FACTOR_BOUND), log=True,
                            note=n_small, absent=f"no run with std <= {SMALL_STD}")
        parts += [p_big, p_small]
        init = PRESERVING_INIT.get(act, PRESERVING_DEFAULT)
        ref = deepest(mlp_runs(t, REFERENCE_STUDY, activation=act, init=init, norm="none"))
        f_ref, n_ref = layer_factors(t, ref)
        if math.isnan(p_small.value) or math.isnan(p_big.value):
            parts.append(missing(f"{act}: per-layer factor with {init}", f"needs both std {SMALL_STD} and std {LARGE_STD}"))
        else:
            # The bounds are the two geometric means, held fixed in the stability draws.
            parts.append(seed_part(f"{act}: per-layer factor with {init} ({REFERENCE_STUDY}), between "
                                   f"{p_small.value:.3g} and {p_big.value:.3g}", f_ref,
                                   between(p_small.value, p_big.value), log=True, note=n_ref,
                                   absent=f"no {act}/{init} runs in {REFERENCE_STUDY}"))
    return parts


CLAIM = Claim(
    4, "Weight scale sets vanishing vs exploding",
    f"Initialization matters: He for ReLU, Xavier for tanh/sigmoid; std {LARGE_STD} explodes, std {SMALL_STD} "
    f"vanishes; the per-layer gradient factor follows the weight variance.",
    (SCALE_STUDY, REFERENCE_STUDY),
    f"per-layer factor at normal std {LARGE_STD} (relu first; per activation in the detail)",
    rule_text(f"Per activation of {SCALE_STUDY}: supported if the factor's CI lies above {FACTOR_BOUND:g} at std "
              f"{LARGE_STD}, below {FACTOR_BOUND:g} at std {SMALL_STD}, and the CI of the factor with the "
              f"variance-preserving init (He for ReLU-like, Xavier for tanh/sigmoid, deepest net of "
              f"{REFERENCE_STUDY}) lies between the two means; contradicted if any of these CIs lies on the wrong "
              f"side of {FACTOR_BOUND:g} or the preserving factor's mean lies outside the two. The quantitative "
              f"follow-up is claim {meanfield.CLAIM.id}."),
    compute, THRESHOLDS)

"""Claim 14: SELU with lecun init self-normalizes: activations stay near mean 0, std 1 through depth."""

from __future__ import annotations

import math

import numpy as np

from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import by_seed, mlp_runs
from gradatlas.analysis.claims.parts import Part, missing, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import below, reported

STUDY = "selu"
# The fixed point SELU keeps, and the largest deviation from it over the deeper half that supports.
TARGET_MEAN = 0.0
TARGET_STD = 1.0
SELU_TOLERANCE = Threshold("SELU_TOLERANCE", 0.15, "largest deviation from mean 0 / std 1 that counts as self-normalized", 0.02, 1.0, log=True)
THRESHOLDS = (SELU_TOLERANCE,)


def _deviation(t: Tables, run: str) -> float:
    mean, std = t.profile(run, "act_mean"), t.profile(run, "act_std")
    if len(mean) == 0 or len(mean) != len(std):
        return math.nan
    half = len(mean) // 2
    dev = np.maximum(np.abs(mean.to_numpy() - TARGET_MEAN), np.abs(std.to_numpy() - TARGET_STD))[half:]
    return float(np.max(dev))


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """SELU's largest deviation from the fixed point at step 0; the other activations reported."""
    runs = mlp_runs(t, STUDY)
    selu = runs[runs["activation"] == "selu"]
    if selu.empty:
        return [missing(f"max deviation of SELU activations from mean {TARGET_MEAN:g}, std {TARGET_STD:g}",
                        "no selu runs")]
    parts = [seed_part(f"max(|act mean|, |act std - {TARGET_STD:g}|) over the deeper half of the layers, step 0",
                       by_seed(selu, [_deviation(t, r) for r in selu["run"]]), below(th.SELU_TOLERANCE), log=True)]
    for act, cell in runs[runs["activation"] != "selu"].groupby("activation"):
        parts.append(seed_part(f"same for {act}", by_seed(cell, [_deviation(t, r) for r in cell["run"]]),
                               reported, log=True, decisive=False))
    return parts


CLAIM = Claim(
    14, "SELU self-normalizes",
    f"SELU with lecun init keeps activations near mean {TARGET_MEAN:g}, variance {TARGET_STD ** 2:g} through depth.",
    (STUDY,),
    f"largest deviation max(|mean|, |std - {TARGET_STD:g}|) of SELU activations over the deeper half of the "
    f"layers, at init",
    rule_text(f"Supported if the CI lies below {SELU_TOLERANCE}; contradicted if it lies above "
              f"{SELU_TOLERANCE}. ReLU/tanh with the same weights are reported, not voted."),
    compute, THRESHOLDS)

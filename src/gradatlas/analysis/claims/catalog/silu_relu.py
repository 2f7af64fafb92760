"""Claim 13: Swish/SiLU is slightly better than ReLU, measured with an interval."""

from __future__ import annotations

import pandas as pd

from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import by_seed, diverged_note, mlp_runs, outcome, paired
from gradatlas.analysis.claims.parts import Part, missing, seed_part, welch_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above

STUDY = "silu_relu"
# silu - relu test accuracy lies above this.
DIFFERENCE_BOUND = Threshold("DIFFERENCE_BOUND", 0.0, "test accuracy silu - relu above which silu is better", -0.05, 0.05)
THRESHOLDS = (DIFFERENCE_BOUND,)


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """silu - relu test accuracy, paired by seed (Welch where no seed is shared)."""
    silu, relu = mlp_runs(t, STUDY, activation=["silu", "swish"]), mlp_runs(t, STUDY, activation="relu")
    if silu.empty or relu.empty:
        return [missing("test accuracy silu - relu", "needs silu and relu runs")]
    a, b = by_seed(silu, outcome(silu)), by_seed(relu, outcome(relu))
    note = diverged_note(pd.concat([silu, relu]))
    diffs = paired(a, b)
    if len(diffs):
        return [seed_part("test accuracy silu - relu (paired by seed)", diffs, above(th.DIFFERENCE_BOUND), note=note)]
    return [welch_part("test accuracy silu - relu (unpaired, Welch)", a, b, above(th.DIFFERENCE_BOUND), note=note)]


CLAIM = Claim(
    13, "SiLU slightly better than ReLU",
    "Swish/SiLU is slightly better than ReLU (a claim from ImageNet, +0.6 to 0.9 points): measured "
    "here with a confidence interval.",
    (STUDY,),
    "test accuracy silu minus relu (paired by seed)",
    rule_text(f"Supported if the CI lies above {DIFFERENCE_BOUND:g}; contradicted if it lies below "
              f"{DIFFERENCE_BOUND:g}; inconclusive otherwise."),
    compute, THRESHOLDS)

"""Claim 13: Swish/SiLU is slightly better than ReLU, measured with an interval."""

from __future__ import annotations

import pandas as pd

from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import by_seed, diverged_note, mlp_runs, outcome, paired
from gradatlas.analysis.claims.parts import Part, missing, seed_part, welch_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import between

STUDY = "silu_relu"
# "Slightly better" as a range of silu - relu test accuracy. Better: above SLIGHT_MIN. Slightly:
# below SLIGHT_MAX, 3 points, about three times the largest gain the claim cites (Ramachandran et
# al. 2017: +0.6 to +0.9 top-1 points on ImageNet, 0.1 to 1 point on CIFAR); a gap past it is a
# large effect, which the claim does not state, and contradicts "slightly" as no gain does.
SLIGHT_MIN = Threshold("SLIGHT_MIN", 0.0, "test accuracy silu - relu above which silu is better", -0.02, 0.02)
SLIGHT_MAX = Threshold("SLIGHT_MAX", 0.03, "test accuracy silu - relu below which the gain is slight", 0.01, 0.1,
                       log=True)
THRESHOLDS = (SLIGHT_MIN, SLIGHT_MAX)


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """silu - relu test accuracy, paired by seed (Welch where no seed is shared), against the range."""
    silu, relu = mlp_runs(t, STUDY, activation=["silu", "swish"]), mlp_runs(t, STUDY, activation="relu")
    if silu.empty or relu.empty:
        return [missing("test accuracy silu - relu", "needs silu and relu runs")]
    a, b = by_seed(silu, outcome(silu)), by_seed(relu, outcome(relu))
    note = diverged_note(pd.concat([silu, relu]))
    rule = between(th.SLIGHT_MIN, th.SLIGHT_MAX)
    diffs = paired(a, b)
    if len(diffs):
        return [seed_part("test accuracy silu - relu (paired by seed)", diffs, rule, note=note)]
    return [welch_part("test accuracy silu - relu (unpaired, Welch)", a, b, rule, note=note)]


CLAIM = Claim(
    13, "SiLU slightly better than ReLU",
    "Swish/SiLU is slightly better than ReLU (a claim from ImageNet, +0.6 to 0.9 points): measured "
    "here with a confidence interval.",
    (STUDY,),
    "test accuracy silu minus relu (paired by seed)",
    rule_text(f"'Slightly better' is a gain between {SLIGHT_MIN:g} and {SLIGHT_MAX:g} ({SLIGHT_MAX.value * 100:g} "
              f"accuracy points, about three times the largest gain the claim cites). Supported if the CI lies "
              f"inside ({SLIGHT_MIN:g}, {SLIGHT_MAX:g}); contradicted if the value lies outside (no gain, or "
              f"a gain larger than slight); inconclusive otherwise."),
    compute, THRESHOLDS, replicas=("digits",))

"""Claim 14: SELU with lecun init self-normalizes: activations stay near mean 0, std 1 through
depth, at initialization and after training, and the deep SELU net trains."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import FAIL_SKILL_THRESHOLD as FAIL_SKILL
from gradatlas.analysis.claims.measures import TRAIN_SKILL_THRESHOLD as TRAIN_SKILL
from gradatlas.analysis.claims.measures import by_seed, deepest, diverged_note, mlp_runs, skill
from gradatlas.analysis.claims.parts import Part, missing, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, below, reported

STUDY = "selu"
# The fixed point SELU keeps, and the largest deviation from it over the deeper half that supports.
TARGET_MEAN = 0.0
TARGET_STD = 1.0
SELU_TOLERANCE = Threshold("SELU_TOLERANCE", 0.15, "largest deviation from mean 0 / std 1 that counts as self-normalized", 0.02, 1.0, log=True)
# After training the weights are no longer LeCun-normal; Klambauer et al. (2017, Theorem 1) prove
# the mapping attracts into the domain mean in [-0.1, 0.1], variance in [0.8, 1.5] for weights near
# it. Its widest edge in std is sqrt(1.5) - 1 = 0.225: a deviation below it is needed to stay in the
# domain (the mean and lower-variance edges are tighter), so the trained sub-claim is supported below
# it. Contradicted above 0.5, a std off by half (variance outside [0.25, 2.25]): far outside the
# domain, where a net that does not normalize (ReLU, tanh with the same weights) sits.
SELU_TRAINED_TOLERANCE = Threshold(
    "SELU_TRAINED_TOLERANCE", math.sqrt(1.5) - 1.0,
    "largest deviation after training inside the std edge of Theorem 1's domain", 0.1, 0.4, log=True)
SELU_TRAINED_CONTRADICT = Threshold(
    "SELU_TRAINED_CONTRADICT", 0.5, "deviation after training above which activations are not normalized",
    0.4, 1.0, log=True)
THRESHOLDS = (SELU_TOLERANCE, SELU_TRAINED_TOLERANCE, SELU_TRAINED_CONTRADICT, FAIL_SKILL, TRAIN_SKILL)


def _deviation(t: Tables, run: str, step: Optional[int]) -> float:
    """max(|mean - TARGET_MEAN|, |std - TARGET_STD|) over the deeper half of the hidden layers at ``step``."""
    if step is None:
        return math.nan
    mean, std = t.profile(run, "act_mean", step), t.profile(run, "act_std", step)
    if len(mean) == 0 or len(mean) != len(std):
        return math.nan
    half = len(mean) // 2
    dev = np.maximum(np.abs(mean.to_numpy() - TARGET_MEAN), np.abs(std.to_numpy() - TARGET_STD))[half:]
    return float(np.max(dev))


def _trained_deviation(t: Tables, run: str, status: str) -> float:
    """The deviation at a run's last probe (NaN for a diverged run or one never probed after step 0)."""
    step = t.last_step(run)
    return _deviation(t, run, step) if status != "diverged" and step else math.nan


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """SELU's deviation from the fixed point at step 0 and after training, and its trained skill;
    the other activations reported."""
    runs = deepest(mlp_runs(t, STUDY))
    selu = runs[runs["activation"] == "selu"]
    if selu.empty:
        return [missing(f"max deviation of SELU activations from mean {TARGET_MEAN:g}, std {TARGET_STD:g}",
                        "no selu runs")]
    depth = int(selu["depth"].iloc[0])
    deviation = f"max(|act mean|, |act std - {TARGET_STD:g}|) over the deeper half of the layers"
    trained = [_trained_deviation(t, r, s) for r, s in zip(selu["run"], selu["status"])]
    parts = [
        seed_part(f"{deviation}, step 0", by_seed(selu, [_deviation(t, r, 0) for r in selu["run"]]),
                  below(th.SELU_TOLERANCE), log=True),
        seed_part(f"{deviation}, after training (last probe)", by_seed(selu, trained),
                  below(th.SELU_TRAINED_TOLERANCE, th.SELU_TRAINED_CONTRADICT), log=True,
                  note=diverged_note(selu), absent="no selu run probed after step 0"),
        seed_part(f"skill of the trained depth-{depth} SELU net", by_seed(selu, skill(selu)),
                  above(th.TRAIN_SKILL, th.FAIL_SKILL), note=diverged_note(selu)),
    ]
    for act, cell in runs[runs["activation"] != "selu"].groupby("activation"):
        parts.append(seed_part(f"same for {act}, step 0", by_seed(cell, [_deviation(t, r, 0) for r in cell["run"]]),
                               reported, log=True, decisive=False))
        parts.append(seed_part(f"same for {act}, after training",
                               by_seed(cell, [_trained_deviation(t, r, s) for r, s in zip(cell["run"], cell["status"])]),
                               reported, log=True, decisive=False))
        parts.append(seed_part(f"skill of the trained {act} net", by_seed(cell, skill(cell)), reported,
                               decisive=False, note=diverged_note(cell)))
    return parts


CLAIM = Claim(
    14, "SELU self-normalizes",
    f"SELU with lecun init keeps activations near mean {TARGET_MEAN:g}, variance {TARGET_STD ** 2:g} through depth, "
    f"and so trains deep nets.",
    (STUDY,),
    f"largest deviation max(|mean|, |std - {TARGET_STD:g}|) of SELU activations over the deeper half of the "
    f"layers, at init and after training; the trained net's skill",
    rule_text(f"Three sub-claims on the deepest SELU net. At initialization: supported if the CI of the deviation "
              f"lies below {SELU_TOLERANCE}, contradicted above it. After training (the last probe): supported if "
              f"it lies below {SELU_TRAINED_TOLERANCE:.3f} (sqrt(1.5) - 1, the std edge of the domain Klambauer et "
              f"al.'s Theorem 1 attracts into), contradicted above {SELU_TRAINED_CONTRADICT:g}. The trained net's "
              f"skill: supported if its CI lies above {TRAIN_SKILL}, contradicted below {FAIL_SKILL}. ReLU/tanh with "
              f"the same weights are reported, not voted."),
    compute, THRESHOLDS)

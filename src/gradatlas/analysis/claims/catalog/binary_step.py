"""Claim 12: the binary step has zero derivative almost everywhere, so backprop cannot train it."""

from __future__ import annotations

import math

import numpy as np

from gradatlas.analysis.claims.claim import Claim
from gradatlas.analysis.claims.measures import by_seed, mlp_runs, outcome, paired, seed_mean, skill
from gradatlas.analysis.claims.parts import Part, exact_zero_part, missing, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, reported

STUDY = "linear_step"
# The relu - step accuracy gap (reported) lies above this.
GAP_BOUND = Threshold("GAP_BOUND", 0.0, "relu - step accuracy gap (reported)", -0.2, 0.2)
THRESHOLDS = (GAP_BOUND,)


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """The largest hidden weight-gradient norm and update ratio of step nets must be exactly 0."""
    step = mlp_runs(t, STUDY, activation="step")
    if step.empty:
        return [missing("max hidden weight-gradient norm of step nets", "no step runs")]
    grads, updates, probed = [], [], {"grad": 0, "update": 0}
    for r in step["run"]:
        part = t.layers_of(r)
        g = part.value[part.hidden & (part.quantity == "weight_grad_norm")]
        u = part.value[part.hidden & (part.quantity == "update_ratio")]
        g, u = np.abs(g[np.isfinite(g)]), np.abs(u[np.isfinite(u)])
        probed["grad"] += len(g)
        probed["update"] += len(u)
        grads.append(float(g.max()) if len(g) else math.nan)
        updates.append(float(u.max()) if len(u) else math.nan)
    parts = [exact_zero_part("max hidden weight-gradient norm of step nets (all steps)", grads,
                             note=f"exact: all {probed['grad']} probed values must be 0"),
             exact_zero_part("max hidden update ratio of step nets", updates,
                             note=f"exact: all {probed['update']} probed values must be 0")]
    diffs, skills = [], []
    for depth, cell in step.groupby("depth"):
        relu = mlp_runs(t, STUDY, activation="relu", depth=depth)
        if not relu.empty:
            diffs.append(paired(by_seed(relu, outcome(relu)), by_seed(cell, outcome(cell))))
        skills.append(by_seed(cell, skill(cell)))
    parts.append(seed_part("test accuracy relu - step (same depth)", seed_mean(diffs), above(th.GAP_BOUND),
                           decisive=False, absent="no relu runs"))
    parts.append(seed_part("skill of step nets (head-only learning)", seed_mean(skills), reported, decisive=False))
    return parts


CLAIM = Claim(
    12, "The binary step cannot be trained by backprop",
    "The binary step has zero derivative almost everywhere: backpropagation cannot train it.",
    (STUDY,),
    "largest hidden-layer weight-gradient norm of step nets over all probed steps",
    "Exact: supported if every probed hidden weight-gradient norm and every hidden update ratio of "
    "the step nets is exactly 0; contradicted if any is not. The accuracy gap to ReLU and the step "
    "nets' skill (what the head alone learns) are reported, not voted.",
    compute, THRESHOLDS)

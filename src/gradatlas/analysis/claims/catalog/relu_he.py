"""Claim 3: ReLU with He initialization keeps gradients in scale and trains where sigmoid fails."""

from __future__ import annotations

import math

import numpy as np

from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import (CAP_DECADES, by_seed, deepest,
                                                diverged_note, log10_ratio, mlp_runs, skill)
from gradatlas.analysis.claims.parts import Part, fixed, join_notes, missing, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.measures import FAIL_SKILL_THRESHOLD as FAIL_SKILL, TRAIN_SKILL_THRESHOLD as TRAIN_SKILL
from gradatlas.analysis.claims.verdicts import INCONCLUSIVE, above, below

STUDY = "depth_activation_init"
# "Roughly constant": the largest over the smallest hidden backprop norm within this many decades.
SPREAD_DECADES = Threshold("SPREAD_DECADES", 1.0, "decades of max/min backprop norm that count as roughly constant", 0.1, 5.0, log=True)
THRESHOLDS = (SPREAD_DECADES, FAIL_SKILL, TRAIN_SKILL,)


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """relu/he's spread of backprop norms over the layers, and its skill where sigmoid/default is at chance."""
    relu = mlp_runs(t, STUDY, activation="relu", init="he_normal", norm="none")
    if relu.empty:
        return [missing("log10 max/min backprop norm, relu/he", "no relu/he_normal runs")]
    top = deepest(relu)
    spreads, flagged, capped = [], 0, 0
    for r in top["run"]:
        part, count = t.fit_layers(r)
        flagged += count
        norms = part.profile("backprop_norm", 0).to_numpy()
        norms = norms[np.isfinite(norms)]
        capped += int(len(norms) >= 2 and norms.min() == 0.0)
        spreads.append(log10_ratio(float(norms.max()), float(norms.min())) if len(norms) >= 2 else math.nan)
    notes = [f"{flagged} underflowing layer(s) left out" if flagged else "",
             f"{capped} run(s) with a layer passing exactly no gradient, counted as {CAP_DECADES:g} decades"
             if capped else ""]
    parts = [seed_part(f"log10 max/min backprop norm over hidden layers (depth {int(top['depth'].iloc[0])})",
                       by_seed(top, spreads), below(th.SPREAD_DECADES), note=join_notes(*notes))]
    sigm = mlp_runs(t, STUDY, activation="sigmoid", init="default", norm="none")
    name = "skill of relu/he where sigmoid/default is at chance"
    if sigm.empty:
        parts.append(missing(name, "no sigmoid/default runs"))
        return parts
    sigm_skill = sigm.assign(skill=skill(sigm)).groupby("depth")["skill"].mean()
    failing = sigm_skill[sigm_skill < th.FAIL_SKILL]
    if failing.empty:
        parts.append(fixed(name, INCONCLUSIVE,
                           f"sigmoid/default is above chance at every depth ({', '.join(f'{d:g}' for d in sigm_skill.index)})"))
        return parts
    depth = failing.index.max()
    at = relu[relu["depth"] == depth]
    parts.append(seed_part(f"skill of relu/he at depth {depth:g} (sigmoid/default skill {failing[depth]:.3g})",
                           by_seed(at, skill(at)), above(th.TRAIN_SKILL, th.FAIL_SKILL), note=diverged_note(at),
                           absent=f"no relu/he run at depth {depth:g}"))
    return parts


CLAIM = Claim(
    3, "ReLU + He keeps gradients in scale and trains",
    "ReLU with He initialization keeps the gradient norm roughly constant across depth and trains "
    "depths at which sigmoid fails.",
    (STUDY,),
    "log10 of max/min backprop norm over the hidden layers at initialization (relu, he_normal, deepest net)",
    rule_text(f"Supported if the CI of log10(max/min) lies below {SPREAD_DECADES:g} (within "
              f"{10 ** SPREAD_DECADES.value:g}x) and, at the deepest depth where sigmoid/default is at chance (mean "
              f"skill < {FAIL_SKILL}), relu/he's skill CI lies above {TRAIN_SKILL}; contradicted if log10(max/min) "
              f"CI lies above {SPREAD_DECADES:g} or relu/he's skill CI lies below {FAIL_SKILL}. Inconclusive if "
              f"sigmoid is above chance at every depth."),
    compute, THRESHOLDS, replicas=("digits",))

"""Claim 10: residual connections train depths at which the plain network fails."""

from __future__ import annotations

import pandas as pd

from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import (by_seed, diverged_note, outcome, paired,
                                                seed_mean, skill)
from gradatlas.analysis.claims.parts import Part, fixed, join_notes, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.measures import FAIL_SKILL_THRESHOLD as FAIL_SKILL, TRAIN_SKILL_THRESHOLD as TRAIN_SKILL
from gradatlas.analysis.claims.verdicts import INCONCLUSIVE, above

STUDY = "residual"
# resmlp - mlp test metric lies above this where the plain MLP fails.
DIFFERENCE_BOUND = Threshold("DIFFERENCE_BOUND", 0.0, "test metric resmlp - mlp above which residual helps", -0.2, 0.2)
THRESHOLDS = (DIFFERENCE_BOUND, FAIL_SKILL, TRAIN_SKILL,)


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per activation, at the deepest depth where the plain MLP is at chance: resmlp - mlp, and resmlp's skill."""
    runs = t.select(STUDY)
    diffs, trained, notes = [], [], []
    for act, cell in runs.groupby("activation"):
        mlp, res = cell[cell["model"] == "mlp"], cell[cell["model"] == "resmlp"]
        if mlp.empty or res.empty:
            continue
        plain = mlp.assign(skill=skill(mlp)).groupby("depth")["skill"].mean()
        failing = plain[plain < th.FAIL_SKILL]
        depth = failing.index.max() if not failing.empty else min(plain.index.max(), res["depth"].max())
        m, r = mlp[mlp["depth"] == depth], res[res["depth"] == depth]
        diffs.append(paired(by_seed(r, outcome(r)), by_seed(m, outcome(m))))
        if failing.empty:
            notes.append(f"{act}: plain MLP above chance at every depth")
        else:
            trained.append(by_seed(r, skill(r)))
            notes.append(f"{act}: plain MLP at chance at depth {depth:g}")
        notes.append(diverged_note(pd.concat([m, r])))
    parts = [seed_part("test metric resmlp - mlp at the deepest depth where the MLP fails", seed_mean(diffs),
                       above(th.DIFFERENCE_BOUND), note=join_notes(*notes), absent="needs mlp and resmlp at a common depth")]
    name = "skill of resmlp where the MLP fails"
    if trained:
        parts.append(seed_part(name, seed_mean(trained), above(th.TRAIN_SKILL, th.FAIL_SKILL)))
    elif any(len(d) for d in diffs):
        parts.append(fixed(name, INCONCLUSIVE, "the plain MLP never fails at these depths"))
    return parts


CLAIM = Claim(
    10, "Residual connections train deeper",
    "Residual connections train depths at which the plain network fails.",
    (STUDY,),
    "test metric of resmlp minus mlp at the deepest depth where the plain MLP is at chance",
    rule_text(f"Per activation, take the deepest depth where the plain MLP's mean skill is below "
              f"{FAIL_SKILL}. Supported if the CI of resmlp - mlp (paired by seed) lies above {DIFFERENCE_BOUND:g} "
              f"and the CI of resmlp's skill there lies above {TRAIN_SKILL}; contradicted if the difference's CI "
              f"lies below {DIFFERENCE_BOUND:g} or resmlp's skill CI lies below {FAIL_SKILL}; inconclusive if the "
              f"plain MLP never fails."),
    compute, THRESHOLDS)

"""Claim 10: residual connections train deeper than plain networks of the same depth.

Per activation of the study, over its depths (each cell at its own bracketed learning rate
and initializer, ``gradatlas.workflow.tuning``), three sub-claims:

- *at least as deep*: at the deepest depth where the plain MLP learns (the lower end of the
  interval of its skill over seeds above ``TRAIN_SKILL``; the shallowest depth where it learns
  nowhere), the residual MLP learns too;
- *better at the deepest depth*: there, resmlp's skill minus the plain MLP's (paired by seed)
  lies above ``DIFFERENCE_BOUND``;
- *trains where the plain net fails*: at the deepest depth where the plain MLP is at chance
  (mean skill below ``FAIL_SKILL``) the residual MLP learns. Where the plain MLP is above chance
  at every depth this is reported, not decided; if it is so for every activation, the claim's
  central statement is untested and an inconclusive sub-claim says so.
"""

from __future__ import annotations

import math

import pandas as pd

from gradatlas.analysis import intervals
from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import FAIL_SKILL_THRESHOLD as FAIL_SKILL
from gradatlas.analysis.claims.measures import TRAIN_SKILL_THRESHOLD as TRAIN_SKILL
from gradatlas.analysis.claims.measures import by_seed, diverged_note, paired, skill
from gradatlas.analysis.claims.parts import Part, fixed, join_notes, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import INCONCLUSIVE, above

STUDY = "residual"
DIFFERENCE_BOUND = Threshold("DIFFERENCE_BOUND", 0.0, "skill resmlp - mlp above which residual helps", -0.2, 0.2)
THRESHOLDS = (DIFFERENCE_BOUND, FAIL_SKILL, TRAIN_SKILL)


def seed_skill(runs: pd.DataFrame) -> pd.Series:
    """Test skill per seed (diverged runs left out: no accuracy)."""
    return by_seed(runs, skill(runs)).dropna()


def learns(runs: pd.DataFrame, train_skill: float) -> bool:
    """Whether a cell learns: the lower end of its skill's interval over seeds lies above ``train_skill``."""
    low = intervals.seed_interval(seed_skill(runs)).low
    return not math.isnan(low) and low > train_skill


def _lr_note(runs: pd.DataFrame, depth: float) -> str:
    """The plain MLP's tuned learning rate at ``depth`` and where it lies in its candidate list."""
    cell = runs[runs["depth"] == depth]
    if "tune_bracket" not in cell or not cell["tune_bracket"].notna().any():
        return ""
    return f"plain lr {cell['lr'].iloc[0]:g} ({cell['tune_bracket'].dropna().iloc[0]})"


def _deepest(depths: list[float]) -> str:
    return f"{max(depths):g}" if depths else "none"


def activation_parts(act: str, mlp: pd.DataFrame, res: pd.DataFrame, th: ThresholdValues) -> tuple[list[Part], bool]:
    """The three sub-claims of one activation (module docstring), on the depths both models
    have, and whether the plain MLP is at chance at one of them."""
    depths = sorted(set(mlp["depth"]) & set(res["depth"]))
    at = {d: (mlp[mlp["depth"] == d], res[res["depth"] == d]) for d in depths}
    plain_learns = [d for d in depths if learns(at[d][0], th.TRAIN_SKILL)]
    res_learns = [d for d in depths if learns(at[d][1], th.TRAIN_SKILL)]
    deepest_learned = f"deepest learned: plain {_deepest(plain_learns)}, residual {_deepest(res_learns)}"
    learn = th.TRAIN_SKILL, th.FAIL_SKILL
    if plain_learns:
        depth, where = max(plain_learns), "the deepest the plain MLP learns at"
    else:
        depth, where = depths[0], "the plain MLP learns at no depth"
    m, r = at[depth]
    parts = [seed_part(f"{act}: resmlp skill at depth {depth:g} ({where})", seed_skill(r), above(*learn),
                       note=join_notes(deepest_learned, diverged_note(r)))]
    deepest = depths[-1]
    m, r = at[deepest]
    parts.append(seed_part(f"{act}: skill resmlp - mlp at depth {deepest:g}, the deepest (paired by seed)",
                           paired(seed_skill(r), seed_skill(m)), above(th.DIFFERENCE_BOUND),
                           note=join_notes(_lr_note(mlp, deepest), diverged_note(pd.concat([m, r]))),
                           absent="no seed with both models not diverged"))
    failing = [d for d in depths if seed_skill(at[d][0]).mean() < th.FAIL_SKILL]
    name = f"{act}: resmlp skill where the plain MLP is at chance"
    if failing:
        m, r = at[max(failing)]
        parts.append(seed_part(f"{name} (depth {max(failing):g})", seed_skill(r), above(*learn),
                               note=join_notes(_lr_note(mlp, max(failing)), diverged_note(pd.concat([m, r])))))
    else:
        parts.append(fixed(name, INCONCLUSIVE, f"the plain MLP is above chance at every depth "
                           f"({', '.join(f'{d:g}' for d in depths)})", decisive=False))
    return parts, bool(failing)


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per activation: the sub-claims of ``activation_parts``."""
    runs = t.select(STUDY)
    parts: list[Part] = []
    plain_fails = False
    for act, cell in runs.groupby("activation", sort=True):
        mlp, res = cell[cell["model"] == "mlp"], cell[cell["model"] == "resmlp"]
        if mlp.empty or res.empty or not set(mlp["depth"]) & set(res["depth"]):
            continue
        found, fails = activation_parts(str(act), mlp, res, th)
        parts += found
        plain_fails |= fails
    if parts and not plain_fails:
        parts.append(fixed("resmlp skill where the plain MLP is at chance", INCONCLUSIVE,
                           "the plain MLP is above chance at every depth of every activation"))
    return parts


CLAIM = Claim(
    10, "Residual connections train deeper",
    "Residual connections train depths at which the plain network fails: per activation, a residual MLP "
    "learns at least as deep as the plain MLP, does better at the deepest depth, and learns where the plain "
    "MLP is at chance.",
    (STUDY,),
    "per activation: resmlp skill at the deepest depth the plain MLP learns at; skill resmlp - mlp at the "
    "deepest depth; resmlp skill where the plain MLP is at chance",
    rule_text(f"Per activation (every cell at its own tuned learning rate and initializer; a cell learns when "
              f"the lower end of its skill's interval over seeds lies above {TRAIN_SKILL}): supported if the CI "
              f"of resmlp's skill lies above {TRAIN_SKILL} at the deepest depth where the plain MLP learns (the "
              f"shallowest if it learns nowhere), the CI of resmlp - mlp skill (paired by seed) at the deepest "
              f"depth lies above {DIFFERENCE_BOUND:g}, and the CI of resmlp's skill lies above {TRAIN_SKILL} at "
              f"the deepest depth where the plain MLP's mean skill is below {FAIL_SKILL}; contradicted if these "
              f"skill CIs lie below {FAIL_SKILL} and the difference's below {DIFFERENCE_BOUND:g}; mixed if some "
              f"sub-claims are supported and others contradicted. An activation whose plain MLP is above chance "
              f"at every depth has its third sub-claim reported, not decided; inconclusive if that holds for "
              f"every activation."),
    compute, THRESHOLDS, replicas=("digits",))

"""Claim 5: ReLU units die (more with a larger lr and a negative bias); leaky ReLU, PReLU and ELU avoid it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gradatlas.analysis.claims.bounds import bounds_part
from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import by_seed, diverged, mlp_runs, paired, seed_mean
from gradatlas.analysis.claims.parts import Part, fmt, join_notes, missing, seed_part, share_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, below, reported

STUDY = "dying_relu"
# The probe's rule (gradatlas.run.probes.slopes), stated here for the rule's text.
DEAD_NOTE = ("it passes almost no gradient on every example of the fixed probe set: |phi'| < 1e-3 for ReLU, "
             "leaky ReLU and PReLU (a leaky unit, slope 0.01, is never dead), |phi'| < 0.05 sup|phi'| for ELU")
# The activations said to avoid dying whose units can die by the probe's rule (a PReLU slope is
# learned and can reach 0; an ELU unit saturates below z ~ -3); leaky ReLU's fixed slope 0.01
# keeps every unit alive by that rule, so its part is reported, not voted.
ALTERNATIVES = ("prelu", "elu")
BY_DEFINITION = ("leaky_relu",)
# ReLU's lr part is measured at this bias: at bias -1 half the units are dead from step 0 and
# the nets stay at chance, so no unit dies at any lr.
LR_BIAS = 0.0
# A diverged run's last probe measures NaN weights: its died_frac is unknown, counted both ways.
DIED_IF_ALIVE, DIED_IF_DEAD = 0.0, 1.0
ALTERNATIVE_DEAD_MAX = Threshold("ALTERNATIVE_DEAD_MAX", 0.01, "share of died units below which an alternative "
                                 "avoids dying", 0.001, 0.2, log=True)
# ReLU's differences (largest - smallest lr; most negative bias - bias 0) lie above this.
DIFFERENCE_BOUND = Threshold("DIFFERENCE_BOUND", 0.0, "difference of dead shares above which dying grows", -0.2, 0.2)
THRESHOLDS = (ALTERNATIVE_DEAD_MAX, DIFFERENCE_BOUND)


def _layer_mean(t: Tables, run: str, quantity: str, last: bool) -> float:
    """Mean of ``quantity`` over the hidden layers of a run at step 0 or its last probe."""
    step = t.last_step(run) if last else 0
    if step is None:
        return math.nan
    profile = t.profile(run, quantity, step)
    return float(profile.mean()) if len(profile) else math.nan


def _died(frame: pd.DataFrame, as_dead: bool) -> pd.Series:
    """Per seed the mean died_frac of ``frame``'s runs, a diverged run counted alive (none of its
    units died) or dead (every unit alive at step 0 died)."""
    unknown = (1.0 - frame["dead0"].fillna(0.0)) * DIED_IF_DEAD if as_dead else DIED_IF_ALIVE
    return by_seed(frame, frame["died"].where(~frame["diverged"], unknown))


def _unknown(frame: pd.DataFrame) -> int:
    return int(frame["diverged"].sum())


WAYS = "diverged runs counted alive / dead"


def _relu_parts(relu: pd.DataFrame, th: ThresholdValues) -> list[Part]:
    """ReLU's died_frac, largest - smallest lr at LR_BIAS (both ways), and dead_frac by bias at step 0."""
    cell = relu[relu["bias0"] == LR_BIAS]
    name = f"relu units died during training (died_frac, last probe), largest - smallest lr, bias {LR_BIAS:g}"
    if cell["lr"].nunique() >= 2:
        high, low = cell[cell["lr"] == cell["lr"].max()], cell[cell["lr"] == cell["lr"].min()]
        # The difference is smallest with the high lr's diverged runs alive and the low lr's dead.
        smallest = paired(_died(high, False), _died(low, True))
        largest = paired(_died(high, True), _died(low, False))
        parts = [bounds_part(name, smallest, largest, above(th.DIFFERENCE_BOUND), unknown=_unknown(high) + _unknown(low),
                             what=WAYS, note=f"lr {high['lr'].iloc[0]:g} - {low['lr'].iloc[0]:g}")]
    else:
        parts = [missing(name, f"needs relu runs at two learning rates with bias {LR_BIAS:g}")]
    # A negative bias kills units at initialization, whatever the lr (an init effect, apart).
    diffs = []
    for _, cell in relu.groupby("lr"):
        neg, zero = cell[cell["bias0"] == cell["bias0"].min()], cell[cell["bias0"] == 0.0]
        if cell["bias0"].min() < 0 and not zero.empty:
            diffs.append(paired(by_seed(neg, neg["dead0"]), by_seed(zero, zero["dead0"])))
    parts.append(seed_part("relu units dead at initialization (dead_frac, step 0), most negative bias - bias 0",
                           seed_mean(diffs), above(th.DIFFERENCE_BOUND), absent="needs relu runs with bias 0 and < 0"))
    return parts


def _alternative_parts(act: str, alt: pd.DataFrame, th: ThresholdValues) -> list[Part]:
    """An alternative's died_frac over every lr and bias (both ways), the same at the lrs where
    none of its runs diverged, its share of diverged runs and its dead_frac at step 0."""
    voted = act in ALTERNATIVES
    survived = alt.loc[~alt["diverged"], "died"]
    peak = float(np.nanmax(survived)) if survived.notna().any() else math.nan
    why = "" if voted else "never dead by the probe's rule (its fixed slope passes 1 % of the gradient)"
    parts = [bounds_part(f"{act}: units died during training (died_frac, last probe; all lrs and biases)",
                         _died(alt, False), _died(alt, True), below(th.ALTERNATIVE_DEAD_MAX) if voted else reported,
                         unknown=_unknown(alt), what=WAYS, decisive=voted,
                         note=join_notes(why, f"max over the runs that trained {fmt(peak)}"))]
    calm = alt[~alt.groupby("lr")["diverged"].transform("any")]
    lrs = ", ".join(f"{lr:g}" for lr in sorted(calm["lr"].unique()))
    parts.append(seed_part(f"{act}: units died during training at the lrs where none of its runs diverged",
                           by_seed(calm, calm["died"]) if len(calm) else [], reported, decisive=False,
                           note=f"lr {lrs}" if lrs else "", absent="a run diverged at every lr"))
    parts.append(share_part(f"{act}: share of runs that diverged (all lrs and biases)", _unknown(alt), len(alt),
                            reported, decisive=False))
    parts.append(seed_part(f"{act}: units dead at initialization (dead_frac, step 0)",
                           by_seed(alt, alt["dead0"]), reported, decisive=False))
    return parts


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """ReLU's died_frac by lr and dead_frac by bias; each alternative's died_frac; PReLU's slope change."""
    runs = mlp_runs(t, STUDY)
    if not (t.has_quantity("died_frac") and t.has_quantity("dead_frac")):
        return [missing("relu units dying during training (died_frac)",
                        "the summary lacks the dead_frac/died_frac probes on the fixed probe set")]
    lost = diverged(runs)
    died = [math.nan if gone else _layer_mean(t, r, "died_frac", True) for r, gone in zip(runs["run"], lost)]
    runs = runs.assign(bias0=runs["bias"].fillna(0.0).astype(float), died=died, diverged=lost.to_numpy(),
                       dead0=[_layer_mean(t, r, "dead_frac", False) for r in runs["run"]])
    parts = _relu_parts(runs[runs["activation"] == "relu"], th)
    for act in (*ALTERNATIVES, *BY_DEFINITION):
        alt = runs[runs["activation"] == act]
        if not alt.empty:
            parts += _alternative_parts(act, alt, th)
    prelu = runs[runs["activation"] == "prelu"]
    changes = []
    for r, gone in zip(prelu["run"], prelu["diverged"]):
        step = t.last_step(r)
        first, last = t.profile(r, "prelu_slope", 0), t.profile(r, "prelu_slope", step)
        usable = not gone and len(first) and len(last) and step
        changes.append(float((last - first).abs().mean()) if usable else math.nan)
    parts.append(seed_part("PReLU mean |slope change|", by_seed(prelu, changes) if len(prelu) else [],
                           reported, log=True, decisive=False, note=f"{_unknown(prelu)} diverged runs left out",
                           absent="no PReLU runs"))
    return parts


_ALTERNATIVES_TEXT = " and ".join(ALTERNATIVES)

CLAIM = Claim(
    5, "Dying ReLU",
    "Dying ReLU: units that output zero for every input; their share grows with the learning rate and "
    "a negative bias; leaky ReLU, PReLU and ELU avoid it. PReLU's slope is learned.",
    (STUDY,),
    "share of hidden units that died during training (died_frac: dead at the last probe, alive at "
    f"step 0) and that are dead at initialization (dead_frac at step 0); a unit is dead when {DEAD_NOTE}",
    rule_text(f"Dying during training and dead at initialization are separate sub-claims (a bias of -1 kills "
              f"units at step 0 whatever the lr). A diverged run's died_frac is unknown: it is counted both ways "
              f"(none of its units died, or all that were alive at step 0) and a sub-claim decides only what "
              f"holds either way (its interval runs from the lower bound's low end to the upper bound's high "
              f"end). Supported if the interval of ReLU's died_frac, largest - smallest lr at bias {LR_BIAS:g} "
              f"(paired by seed), lies above {DIFFERENCE_BOUND:g}, the interval of ReLU's step-0 dead_frac, most "
              f"negative bias - bias 0 (paired by lr and seed), lies above {DIFFERENCE_BOUND:g}, and for each of "
              f"{_ALTERNATIVES_TEXT} the interval of died_frac (all lrs and biases) lies below "
              f"{ALTERNATIVE_DEAD_MAX:g}; contradicted if a difference's interval lies below {DIFFERENCE_BOUND:g} "
              f"or an alternative's lies above {ALTERNATIVE_DEAD_MAX:g}. Reported, not voted: leaky ReLU's "
              f"died_frac (never dead by the probe's rule), each alternative's died_frac at the lrs where none "
              f"of its runs diverged, its share of diverged runs and its dead_frac at step 0, and the PReLU "
              f"slope change."),
    compute, THRESHOLDS, replicas=("digits",))

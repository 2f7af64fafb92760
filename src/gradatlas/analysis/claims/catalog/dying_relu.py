"""Claim 5: ReLU units die (more with a larger lr and a negative bias); leaky ReLU, PReLU and ELU avoid it."""

from __future__ import annotations

import math

import numpy as np

from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import by_seed, diverged_note, mlp_runs, paired, seed_mean
from gradatlas.analysis.claims.parts import Part, fmt, join_notes, missing, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, below, reported

STUDY = "dying_relu"
# A unit is dead when |phi'(z)| stays below a share of sup|phi'| for every example of the probe
# set (the probe's definition; stated here for the rule's text).
DEAD_SHARE_NOTE = "|phi'| below the probe's stated share of its sup for every example of the fixed probe set"
# The activations that avoid dying: their died_frac stays below ALTERNATIVE_DEAD_MAX.
ALTERNATIVES = ("leaky_relu", "prelu", "elu")
ALTERNATIVE_DEAD_MAX = Threshold("ALTERNATIVE_DEAD_MAX", 0.01, "share of died units below which an alternative avoids dying", 0.001, 0.2, log=True)
# ReLU's differences (largest - smallest lr; most negative bias - bias 0) lie above this.
DIFFERENCE_BOUND = Threshold("DIFFERENCE_BOUND", 0.0, "difference of dead shares above which dying grows", -0.2, 0.2)
THRESHOLDS = (ALTERNATIVE_DEAD_MAX, DIFFERENCE_BOUND,)


def _layer_mean(t: Tables, run: str, quantity: str, last: bool) -> float:
    """Mean of ``quantity`` over the hidden layers of a run at step 0 or its last probe."""
    step = t.last_step(run) if last else 0
    if step is None:
        return math.nan
    profile = t.profile(run, quantity, step)
    return float(profile.mean()) if len(profile) else math.nan


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """ReLU's died_frac by lr and dead_frac by bias; each alternative's died_frac; PReLU's slope change."""
    runs = mlp_runs(t, STUDY)
    if not (t.has_quantity("died_frac") and t.has_quantity("dead_frac")):
        return [missing("relu units dying during training (died_frac)",
                        "the summary lacks the dead_frac/died_frac probes on the fixed probe set")]
    # A diverged run's last probe measures NaN weights, not dying: its died_frac is left out.
    died = [math.nan if status == "diverged" else _layer_mean(t, r, "died_frac", True)
            for r, status in zip(runs["run"], runs["status"])]
    runs = runs.assign(bias0=runs["bias"].fillna(0.0).astype(float), died=died,
                       dead0=[_layer_mean(t, r, "dead_frac", False) for r in runs["run"]])
    relu = runs[runs["activation"] == "relu"]
    parts: list[Part] = []
    # Dying during training grows with the lr: largest - smallest lr, per bias, paired by seed.
    diffs = []
    for _, cell in relu.groupby("bias0"):
        if cell["lr"].nunique() >= 2:
            high, low = cell[cell["lr"] == cell["lr"].max()], cell[cell["lr"] == cell["lr"].min()]
            diffs.append(paired(by_seed(high, high["died"]), by_seed(low, low["died"])))
    parts.append(seed_part("relu units died during training (died_frac, last probe), largest - smallest lr",
                           seed_mean(diffs), above(th.DIFFERENCE_BOUND), note=diverged_note(relu),
                           absent="needs relu runs at two learning rates"))
    # A negative bias kills units at initialization, whatever the lr (an init effect, apart).
    diffs = []
    for _, cell in relu.groupby("lr"):
        neg, zero = cell[cell["bias0"] == cell["bias0"].min()], cell[cell["bias0"] == 0.0]
        if cell["bias0"].min() < 0 and not zero.empty:
            diffs.append(paired(by_seed(neg, neg["dead0"]), by_seed(zero, zero["dead0"])))
    parts.append(seed_part("relu units dead at initialization (dead_frac, step 0), most negative bias - bias 0",
                           seed_mean(diffs), above(th.DIFFERENCE_BOUND), absent="needs relu runs with bias 0 and < 0"))
    for act in ALTERNATIVES:
        alt = runs[runs["activation"] == act]
        if alt.empty:
            continue
        peak = float(np.nanmax(alt["died"])) if alt["died"].notna().any() else math.nan
        parts.append(seed_part(f"{act}: units died during training (died_frac, last probe; all lrs and biases)",
                               by_seed(alt, alt["died"]), below(th.ALTERNATIVE_DEAD_MAX),
                               note=join_notes(f"max over runs {fmt(peak)}", diverged_note(alt))))
        parts.append(seed_part(f"{act}: units dead at initialization (dead_frac, step 0)",
                               by_seed(alt, alt["dead0"]), reported, decisive=False))
    prelu = runs[runs["activation"] == "prelu"]
    changes = []
    for r, status in zip(prelu["run"], prelu["status"]):
        step = t.last_step(r)
        first, last = t.profile(r, "prelu_slope", 0), t.profile(r, "prelu_slope", step)
        usable = status != "diverged" and len(first) and len(last) and step
        changes.append(float((last - first).abs().mean()) if usable else math.nan)
    parts.append(seed_part("PReLU mean |slope change|", by_seed(prelu, changes) if len(prelu) else [],
                           reported, log=True, decisive=False, note=diverged_note(prelu), absent="no PReLU runs"))
    return parts


_ALTERNATIVES_TEXT = f"{', '.join(ALTERNATIVES[:-1])} and {ALTERNATIVES[-1]}"

CLAIM = Claim(
    5, "Dying ReLU",
    "Dying ReLU: units that output zero for every input; their share grows with the learning rate and "
    "a negative bias; leaky ReLU, PReLU and ELU avoid it. PReLU's slope is learned.",
    (STUDY,),
    "share of hidden units that died during training (died_frac: dead at the last probe, alive at "
    "step 0) and that are dead at initialization (dead_frac at step 0); a unit is dead when "
    f"{DEAD_SHARE_NOTE}",
    rule_text(f"Dying during training and dead at initialization are separate parts (a bias of -1 kills "
              f"units at step 0 whatever the lr). Supported if the interval of ReLU's died_frac, largest "
              f"- smallest lr (paired by bias and seed), lies above {DIFFERENCE_BOUND:g}, the interval of ReLU's "
              f"step-0 dead_frac, most negative bias - bias 0 (paired by lr and seed), lies above "
              f"{DIFFERENCE_BOUND:g}, and for each of {_ALTERNATIVES_TEXT} the interval of died_frac lies below "
              f"{ALTERNATIVE_DEAD_MAX:g}; contradicted if a difference's interval lies below {DIFFERENCE_BOUND:g} "
              f"or an alternative's died_frac interval lies above {ALTERNATIVE_DEAD_MAX:g}. The alternatives' "
              f"dead_frac at step 0 and the PReLU slope change are reported, not voted."),
    compute, THRESHOLDS, replicas=("digits",))

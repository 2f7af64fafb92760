"""Claim 9: GRU and LSTM carry gradients through time far better than a vanilla RNN."""

from __future__ import annotations

import math
from typing import Optional

import pandas as pd

from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import (by_seed, diverged_note, log10_ratio,
                                                paired, seed_mean, skill)
from gradatlas.analysis.claims.parts import Part, fixed, join_notes, missing, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.measures import FAIL_SKILL_THRESHOLD as FAIL_SKILL, TRAIN_SKILL_THRESHOLD as TRAIN_SKILL
from gradatlas.analysis.claims.verdicts import INCONCLUSIVE, above

STUDY = "memory"
TASKS = ("adding", "copy")
GATED = ("gru", "lstm")
# Decades of gradient decay through time are floored here: float32 carries 24 bits (7.2
# decades), so a dL/dh_1 more than 8 decades below dL/dh_T is lost in rounding when the
# weight gradient sums over t; whether it is 1e-9 or 1e-40 (or underflowed to 0) is noise
# that would only widen the interval.
DECAY_FLOOR_DECADES = Threshold("DECAY_FLOOR_DECADES", 8.0, "decades of decay through time at which the measure is floored", 4.0, 30.0, log=True)
# Gated minus RNN decades kept: above GAP_SUPPORT supports, below GAP_CONTRADICT contradicts.
GAP_SUPPORT = Threshold("GAP_SUPPORT", 1.0, "decades kept, gated - RNN, above which gates carry gradients", 0.1, 5.0, log=True)
GAP_CONTRADICT = Threshold("GAP_CONTRADICT", 0.0, "decades kept, gated - RNN, below which gates do not help", -2.0, 1.0)
THRESHOLDS = (DECAY_FLOOR_DECADES, GAP_SUPPORT, GAP_CONTRADICT, FAIL_SKILL, TRAIN_SKILL,)


def _decay(t: Tables, run: str, step: Optional[int], floor: float) -> tuple[float, int]:
    """log10 of dLoss/dh at the first over the last kept time step (how much gradient reaches the
    start), floored at -floor, and how many time steps the ``underflow`` probe
    flagged (left out)."""
    part = t.timesteps_of(run)
    if part.empty or step is None:
        return math.nan, 0
    part = part[part["step"] == step]
    quantity = part["quantity"].astype(str)
    flagged = set(part.loc[(quantity == "underflow") & (part["value"] > 0), "t"])
    norms = part[(quantity == "hidden_grad_norm") & ~part["t"].isin(flagged)]
    if norms.empty:
        return math.nan, len(flagged)
    series = norms.groupby("t")["value"].mean().sort_index()
    return max(log10_ratio(float(series.iloc[0]), float(series.iloc[-1])), -floor), len(flagged)


def _last_timestep_step(t: Tables, run: str) -> Optional[int]:
    part = t.timesteps_of(run)
    return int(part["step"].max()) if not part.empty else None


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Gated - RNN decay at the longest length (trained; at init reported), and gated skill where the RNN fails."""
    runs = t.select(STUDY, data=list(TASKS))
    trained: list[pd.Series] = []
    at_init: dict[str, list[pd.Series]] = {model: [] for model in GATED}
    task: list[pd.Series] = []
    notes = []
    flagged = 0
    for data, cell in runs.groupby("data"):
        longest = cell[cell["length"] == cell["length"].max()]
        rnn = longest[longest["model"] == "rnn"]
        if rnn.empty:
            continue

        def decays(frame: pd.DataFrame, initial: bool) -> pd.Series:
            nonlocal flagged
            values = []
            for r, status in zip(frame["run"], frame["status"]):
                if not initial and status == "diverged":  # no trained network to measure
                    values.append(math.nan)
                    continue
                value, count = _decay(t, r, 0 if initial else _last_timestep_step(t, r), th.DECAY_FLOOR_DECADES)
                values.append(value)
                flagged += count
            return by_seed(frame, values)

        rnn_trained, rnn_init = decays(rnn, False), decays(rnn, True)
        for model in GATED:
            gated = longest[longest["model"] == model]
            if not gated.empty:
                trained.append(paired(decays(gated, False), rnn_trained))
                at_init[model].append(paired(decays(gated, True), rnn_init))
        rnn_skill = cell[cell["model"] == "rnn"].assign(skill=lambda f: skill(f)).groupby("length")["skill"].mean()
        failing = rnn_skill[rnn_skill < th.FAIL_SKILL]
        if failing.empty:
            notes.append(f"{data}: the RNN is above chance at every length")
            continue
        at = cell[(cell["length"] == failing.index.max()) & cell["model"].isin(list(GATED))]
        if not at.empty:
            task.append(by_seed(at, skill(at)))
        notes.append(f"{data}: RNN at chance at length {failing.index.max():g}")
    absent = "needs rnn and gru/lstm on adding or copy"
    underflow = f"{flagged} underflowing time step(s) left out" if flagged else ""
    parts = [
        seed_part("decades of dL/dh_t kept from t=T to t=1 after training, gated - RNN", seed_mean(trained),
                  above(th.GAP_SUPPORT, th.GAP_CONTRADICT), note=join_notes(underflow, diverged_note(runs)), absent=absent),
    ]
    name = "skill of GRU/LSTM at the longest length where the RNN is at chance"
    if task:
        parts.append(seed_part(name, seed_mean(task), above(th.TRAIN_SKILL, th.FAIL_SKILL), note=join_notes(*notes)))
    elif notes:
        parts.append(fixed(name, INCONCLUSIVE, join_notes(*notes)))
    else:
        parts.append(missing(name, "needs rnn and gru/lstm runs"))
    for model, gaps in at_init.items():
        parts.append(seed_part(f"same at initialization, {model} - RNN", seed_mean(gaps),
                               above(th.GAP_SUPPORT, th.GAP_CONTRADICT), decisive=False, absent=absent))
    return parts


CLAIM = Claim(
    9, "Gated RNNs carry gradients through time",
    f"GRU and LSTM carry gradients through time far better than a vanilla RNN: the norm of dLoss/dh_t "
    f"decays much more slowly with the distance to the loss, and long-range tasks ({', '.join(TASKS)}) are "
    f"solved at lengths where the RNN is at chance.",
    (STUDY,),
    "log10(||dL/dh_1|| / ||dL/dh_T||) of GRU/LSTM minus the RNN's after training, longest length",
    rule_text(f"Supported if the CI of the gated-minus-RNN difference at the last probed step (decay floored "
              f"at {DECAY_FLOOR_DECADES:g} decades, float32's resolution) lies above {GAP_SUPPORT:g} decade, and "
              f"at the longest length where the RNN is at chance (mean skill < {FAIL_SKILL}) the CI of GRU/LSTM "
              f"skill lies above {TRAIN_SKILL}; contradicted if the difference CI lies below {GAP_CONTRADICT:g} or "
              f"the gated skill CI lies below {FAIL_SKILL}. Inconclusive if the RNN is above chance at every "
              f"length. The same difference at initialization is reported per model, not voted: it depends on "
              f"the gate biases (an LSTM with forget bias 1 starts with its gates half open; a GRU's update "
              f"gate starts at 0.5, which keeps no more than a tanh RNN)."),
    compute, THRESHOLDS)

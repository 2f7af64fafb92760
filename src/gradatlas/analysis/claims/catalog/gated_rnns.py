"""Claim 9: GRU and LSTM carry gradients through time far better than a vanilla RNN."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import pandas as pd

from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import FAIL_SKILL_THRESHOLD as FAIL_SKILL
from gradatlas.analysis.claims.measures import TRAIN_SKILL_THRESHOLD as TRAIN_SKILL
from gradatlas.analysis.claims.measures import by_seed, diverged_note, log10_ratio, paired, seed_mean, skill
from gradatlas.analysis.claims.parts import Part, fixed, join_notes, missing, seed_part
from gradatlas.analysis.claims.summary import Tables, per_tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import INCONCLUSIVE, above, reported

# The trained networks (memory: adding and copy over length; sequential_mnist1d: one length)
# and the networks at initialization (memory_init: one step each, many seeds).
TRAINED_STUDIES = ("memory", "sequential_mnist1d")
INIT_STUDY = "memory_init"
GATED = ("gru", "lstm")
DECAY_CAP = Threshold("DECAY_CAP", 30.0, "decades of decay through time at which a value is capped (the values "
                      "there are counted)", 8.0, 30.0)
# Gated minus RNN decades kept: above GAP_SUPPORT supports, below GAP_CONTRADICT contradicts.
GAP_SUPPORT = Threshold("GAP_SUPPORT", 1.0, "decades kept, gated - RNN, above which gates carry gradients", 0.1, 5.0, log=True)
GAP_CONTRADICT = Threshold("GAP_CONTRADICT", 0.0, "decades kept, gated - RNN, below which gates do not help", -2.0, 1.0)
MATCH_SKILL = Threshold("MATCH_SKILL", 0.5, "skill both nets of a seed must reach to be compared at matched task "
                        "success", 0.2, 0.9)
THRESHOLDS = (DECAY_CAP, GAP_SUPPORT, GAP_CONTRADICT, MATCH_SKILL, FAIL_SKILL, TRAIN_SKILL)


@dataclass
class Counts:
    """What the decay measurements of one part left out or capped, for its notes; each run's
    measurement at a step is counted once (``seen``), however many comparisons use it."""

    underflow: int = 0
    capped: int = 0
    measured: int = 0
    seen: dict = field(default_factory=dict)

    def note(self, cap: float) -> str:
        """The counts in words (empty where nothing was left out or capped)."""
        return join_notes(f"{self.underflow} underflowing time step(s) left out" if self.underflow else "",
                          f"{self.capped} of {self.measured} values at the {cap:g}-decade cap" if self.measured else "")


def _decay(t: Tables, run: str, step: Optional[int], cap: float, counts: Counts) -> float:
    """log10 of dLoss/dh at the first over the last kept time step (how much gradient reaches the
    start), capped at -``cap`` decades; the time steps the ``underflow`` probe flagged are left out."""
    if (run, step) not in counts.seen:
        counts.seen[(run, step)] = _measure_decay(t, run, step, cap, counts)
    return counts.seen[(run, step)]


def _measure_decay(t: Tables, run: str, step: Optional[int], cap: float, counts: Counts) -> float:
    value, flagged = _uncapped_decay(t, run, step)
    counts.underflow += flagged
    if math.isnan(value):
        return value
    counts.measured += 1
    counts.capped += value <= -cap
    return max(value, -cap)


@per_tables
def _uncapped_decay(t: Tables, run: str, step: Optional[int]) -> tuple[float, int]:
    """The decay before the cap, and how many time steps the ``underflow`` probe flagged: the
    run's data alone, whatever the thresholds (cached per summary)."""
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
    return log10_ratio(float(series.iloc[0]), float(series.iloc[-1])), len(flagged)


def _last_timestep_step(t: Tables, run: str) -> Optional[int]:
    part = t.timesteps_of(run)
    return int(part["step"].max()) if not part.empty else None


def _decays(t: Tables, frame: pd.DataFrame, initial: bool, cap: float, counts: Counts) -> pd.Series:
    """Per run of ``frame`` its decay at step 0 or at its last probe (NaN for a diverged run
    after training: no trained network to measure), indexed by seed."""
    values = []
    for r, status in zip(frame["run"], frame["status"]):
        if not initial and status == "diverged":
            values.append(math.nan)
        else:
            values.append(_decay(t, r, 0 if initial else _last_timestep_step(t, r), cap, counts))
    return by_seed(frame, values)


def _tasks(t: Tables, studies: tuple[str, ...]) -> list[tuple[str, pd.DataFrame]]:
    """(task name, its runs) for every data set of ``studies`` that has RNN runs."""
    out = []
    for study in studies:
        runs = t.select(study)
        if runs.empty or "data" not in runs:
            continue
        for data, cell in runs.groupby("data"):
            if (cell["model"] == "rnn").any():
                out.append((f"{study}/{data}", cell))
    return out


def _longest(cell: pd.DataFrame) -> pd.DataFrame:
    return cell[cell["length"] == cell["length"].max()]


def _init_parts(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per gated model: decades kept at initialization minus the RNN's, longest length, tasks
    averaged per seed."""
    gaps, note = _init_gaps(t, th.DECAY_CAP)
    return [seed_part(f"at initialization ({INIT_STUDY}, step 0, longest length): decades of dL/dh_t kept from "
                      f"t=T to t=1, {model} - RNN", gaps[model], above(th.GAP_SUPPORT, th.GAP_CONTRADICT),
                      note=note, absent=f"needs rnn and {model} runs in {INIT_STUDY}") for model in GATED]


@per_tables
def _init_gaps(t: Tables, cap: float) -> tuple[dict[str, pd.Series], str]:
    """Per gated model, the per-seed gap at initialization (``_init_parts``), and the note."""
    counts, gaps = Counts(), {model: [] for model in GATED}
    tasks = _tasks(t, (INIT_STUDY,))
    for _, cell in tasks:
        longest = _longest(cell)
        rnn = _decays(t, longest[longest["model"] == "rnn"], True, cap, counts)
        for model in GATED:
            gated = longest[longest["model"] == model]
            if not gated.empty:
                gaps[model].append(paired(_decays(t, gated, True, cap, counts), rnn))
    return ({model: seed_mean(gaps[model]) for model in GATED},
            join_notes(", ".join(name for name, _ in tasks), counts.note(cap)))


def _matched_parts(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per gated model: decades kept after training minus the RNN's, at the longest length where
    both reach MATCH_SKILL, over the seeds where both do (tasks averaged per seed)."""
    gaps, notes = _matched_gaps(t, th.MATCH_SKILL, th.DECAY_CAP)
    return [seed_part(f"after training at matched task success (both skill >= {th.MATCH_SKILL:g}, longest such "
                      f"length): decades of dL/dh_t kept, {model} - RNN", gaps[model],
                      above(th.GAP_SUPPORT, th.GAP_CONTRADICT), note=notes[model],
                      absent=f"no length where the RNN and the {model} of a seed both reach skill {th.MATCH_SKILL:g}")
            for model in GATED]


@per_tables
def _matched_gaps(t: Tables, match_skill: float, cap: float) -> tuple[dict[str, pd.Series], dict[str, str]]:
    """Per gated model, the per-seed gap at matched task success (``_matched_parts``), and its note."""
    counts, gaps, where = Counts(), {model: [] for model in GATED}, {model: [] for model in GATED}
    for name, cell in _tasks(t, TRAINED_STUDIES):
        cell = cell.assign(skill=skill(cell))
        rnn_all = cell[cell["model"] == "rnn"]
        for model in GATED:
            gated_all = cell[cell["model"] == model]
            for length in sorted(cell["length"].unique(), reverse=True):
                rnn, gated = rnn_all[rnn_all["length"] == length], gated_all[gated_all["length"] == length]
                rnn_ok = set(rnn.loc[rnn["skill"] >= match_skill, "seed"])
                both = rnn_ok & set(gated.loc[gated["skill"] >= match_skill, "seed"])
                if both:
                    rnn, gated = rnn[rnn["seed"].isin(both)], gated[gated["seed"].isin(both)]
                    gaps[model].append(paired(_decays(t, gated, False, cap, counts),
                                              _decays(t, rnn, False, cap, counts)))
                    where[model].append(f"{name} length {length:g}: {len(both)} seeds")
                    break
    # The counts are over both models' decays: every note is written after the loop.
    return ({model: seed_mean(gaps[model]) for model in GATED},
            {model: join_notes(*where[model], counts.note(cap)) for model in GATED})


def _skill_and_unmatched_parts(t: Tables, th: ThresholdValues) -> list[Part]:
    """Gated skill at the longest length where the RNN is at chance (voted), and the gated - RNN
    decay after training at the longest length whatever the skill (reported)."""
    task, notes, unmatched, unmatched_note = _skill_and_unmatched(t, th.FAIL_SKILL, th.DECAY_CAP)
    name = "skill of GRU/LSTM at the longest length where the RNN is at chance"
    if task is not None:
        skill_part = seed_part(name, task, above(th.TRAIN_SKILL, th.FAIL_SKILL), note=notes)
    elif notes:
        skill_part = fixed(name, INCONCLUSIVE, notes)
    else:
        skill_part = missing(name, "needs rnn and gru/lstm runs")
    return [skill_part,
            seed_part("after training, longest length, whatever the skill: decades of dL/dh_t kept, gated - RNN "
                      "(reflects which nets solved the task)", unmatched, reported, decisive=False,
                      note=unmatched_note, absent="needs rnn and gru/lstm runs")]


@per_tables
def _skill_and_unmatched(t: Tables, fail_skill: float, cap: float
                         ) -> tuple[Optional[pd.Series], str, pd.Series, str]:
    """The gated skill per seed where the RNN is at chance (None where no task has such a
    length) and its note; the unmatched gap per seed and its note (``_skill_and_unmatched_parts``)."""
    counts, unmatched, task, notes, diverged = Counts(), [], [], [], []
    for name, cell in _tasks(t, TRAINED_STUDIES):
        diverged.append(cell)
        longest = _longest(cell)
        rnn = _decays(t, longest[longest["model"] == "rnn"], False, cap, counts)
        for model in GATED:
            gated = longest[longest["model"] == model]
            if not gated.empty:
                unmatched.append(paired(_decays(t, gated, False, cap, counts), rnn))
        rnn_skill = cell[cell["model"] == "rnn"].assign(skill=lambda f: skill(f)).groupby("length")["skill"].mean()
        failing = rnn_skill[rnn_skill < fail_skill]
        if failing.empty:
            notes.append(f"{name}: the RNN is above chance at every length")
            continue
        at = cell[(cell["length"] == failing.index.max()) & cell["model"].isin(list(GATED))]
        if not at.empty:
            task.append(by_seed(at, skill(at)))
        notes.append(f"{name}: RNN at chance at length {failing.index.max():g}")
    runs = pd.concat(diverged) if diverged else pd.DataFrame(columns=["status"])
    return (seed_mean(task) if task else None, join_notes(*notes), seed_mean(unmatched),
            join_notes(counts.note(cap), diverged_note(runs)))


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Gated - RNN decay at initialization and at matched task success; gated skill where the RNN fails."""
    return _init_parts(t, th) + _matched_parts(t, th) + _skill_and_unmatched_parts(t, th)


CLAIM = Claim(
    9, "Gated RNNs carry gradients through time",
    "GRU and LSTM carry gradients through time far better than a vanilla RNN: the norm of dLoss/dh_t "
    "decays much more slowly with the distance to the loss, and long-range tasks (adding, copy) are "
    "solved at lengths where the RNN is at chance.",
    (*TRAINED_STUDIES, INIT_STUDY),
    "log10(||dL/dh_1|| / ||dL/dh_T||) of GRU/LSTM minus the RNN's, at initialization and after training at "
    "matched task success",
    rule_text(f"Sub-claims, each voted: (1) per gated model, at initialization ({INIT_STUDY}, step 0, longest "
              f"length, tasks averaged per seed) the CI of gated - RNN decades kept lies above {GAP_SUPPORT:g}; "
              f"(2) per gated model, after training at matched task success (the longest length where the RNN "
              f"and the gated net of a seed both reach skill {MATCH_SKILL:g}, over those seeds) the same CI lies "
              f"above {GAP_SUPPORT:g}; (3) at the longest length where the RNN is at chance (mean skill < "
              f"{FAIL_SKILL:g}) the CI of GRU/LSTM skill lies above {TRAIN_SKILL:g}. Contradicted if a gap's CI "
              f"lies below {GAP_CONTRADICT:g} or the gated skill CI below {FAIL_SKILL:g}. Decays are capped at "
              f"{DECAY_CAP:g} decades and the capped values are counted; time steps the underflow probe flagged are left out. The trained gap at the longest "
              f"length whatever the skill is reported, not voted: there it reflects which nets solved the task."),
    compute, THRESHOLDS)

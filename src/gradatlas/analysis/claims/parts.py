"""A claim's parts: one measured quantity each, with its value, interval, n, verdict and draws.

Each constructor matches one kind of observation to its interval (``gradatlas.analysis.intervals``)
and to the replicate draws that the stability re-runs the part's rule on: per-seed values
(``seed_part``: a normal model, on the log scale for a positive quantity), shares of runs
(``share_part``, ``share_difference_part``: beta-binomial), unpaired seeds (``welch_part``),
a median over runs (``median_part``: the runs resampled) and exact statements
(``exact_zero_part``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import numpy as np

from gradatlas.analysis import intervals
from gradatlas.analysis.claims.verdicts import INCONCLUSIVE, NO_DATA, Judge, exactly_zero

# A part over seeds decides (supported or contradicted) from this many seeds on: below it the
# seeds' range is shown, and the part is inconclusive.
MIN_SEEDS = 4

# A part's draws: (rng, number of draws, confidence of the intervals) -> the part verdict of each draw.
Draws = Callable[[np.random.Generator, int, float], np.ndarray]
# A part's verdicts in simulated studies of n seeds at its own estimates taken as the truth:
# (rng, n seeds, number of studies, confidence) -> verdicts (the seed rule, ``claims.seeds``).
Simulate = Callable[[np.random.Generator, int, int, float], np.ndarray]
# A part's interval at another confidence (a float, or an array: elementwise): confidence ->
# (value, low, high); the family adjustment
# (``claims.multiplicity``) inverts it into a p-value and shows the adjusted interval.
At = Callable[[float], tuple[float, float, float]]


@dataclass
class Part:
    """One sub-claim: a measured quantity of a claim with its rule, interval, verdict and stability.

    ``draws`` recomputes the verdict on replicate draws of its seeds at a given confidence (None:
    the verdict does not depend on the seeds, e.g. a part without data); ``at`` is its interval
    at another confidence and ``judge`` its rule (None for exact statements and parts without a
    sampling interval). The family adjustment (``claims.multiplicity``) sets ``unadjusted`` (the
    verdict of the 95 % interval), ``p_value``, ``p_adjusted``, ``confidence`` (the level of the
    adjusted interval ``adj_low``-``adj_high``) and replaces ``verdict`` by the adjusted one.
    """

    name: str
    value: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    n: int = 0
    verdict: str = NO_DATA
    note: str = ""
    decisive: bool = True
    interval: str = ""
    draws: Optional[Draws] = field(default=None, repr=False, compare=False)
    stability: float = math.nan
    at: Optional[At] = field(default=None, repr=False, compare=False)
    judge: Optional[Judge] = field(default=None, repr=False, compare=False)
    unadjusted: str = ""
    p_value: float = math.nan
    p_adjusted: float = math.nan
    confidence: float = intervals.CONFIDENCE
    adj_low: float = math.nan
    adj_high: float = math.nan
    cells: tuple[tuple[str, str], ...] = ()
    simulate: Optional[Simulate] = field(default=None, repr=False, compare=False)
    # What ``at`` is a function of (the constructor and its observations), which with the rule
    # (``verdicts.rule_of``) fixes the part's p-value: the family adjustment's memo key.
    evidence: tuple = field(default=(), repr=False, compare=False)

    def resample(self, rng: np.random.Generator, count: int, confidence: Optional[float] = None) -> np.ndarray:
        """The part verdict of ``count`` replicate draws, their intervals at ``confidence``
        (default: the part's own, adjusted, level)."""
        if self.draws is None:
            return np.full(count, self.verdict, dtype=object)
        level = self.confidence if confidence is None else confidence
        return np.asarray(self.draws(rng, count, level), dtype=object).reshape(count)

    def describe(self) -> str:
        """One line: name, value [interval] (method), n, verdict, stability (and note)."""
        text = f"{self.name}: {fmt(self.value)}"
        if not (math.isnan(self.ci_low) or math.isnan(self.ci_high)):
            text += f" [{fmt(self.ci_low)}, {fmt(self.ci_high)}]"
        text += f" ({self.interval}), n={self.n}" if self.interval else f", n={self.n}"
        text += f" -> {self.verdict}" + ("" if self.decisive else " (informational)")
        if not math.isnan(self.stability):
            text += f", stability {self.stability:.2f}"
        return text + (f" ({self.note})" if self.note else "")



def _levels(interval: Callable[[float], tuple], confidence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, low, high) of ``interval`` at one confidence or at each of an array of them."""
    if not np.ndim(confidence):
        return tuple(np.float64(v) for v in interval(float(confidence)))
    rows = np.array([[float(v) for v in interval(float(c))] for c in np.ravel(confidence)])
    shape = np.shape(confidence)
    return rows[:, 0].reshape(shape), rows[:, 1].reshape(shape), rows[:, 2].reshape(shape)


def fmt(x: float) -> str:
    """A number as the parts' texts show it: an integer as such, else 3 significant digits."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if float(x) == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.3g}"


def join_notes(*notes: str) -> str:
    """The non-empty notes joined by '; '."""
    return "; ".join(n for n in notes if n)


def missing(name: str, note: str, decisive: bool = True) -> Part:
    """A part whose cells are absent from the tables."""
    return Part(name, note=note, decisive=decisive)


def fixed(name: str, verdict: str, note: str, decisive: bool = True) -> Part:
    """A part whose verdict follows from the design, not from a measurement (no interval)."""
    return Part(name, verdict=verdict, note=note, decisive=decisive)


def seed_part(name: str, values: Iterable[float], judge: Judge, *, log: bool = False, note: str = "",
              decisive: bool = True, absent: str = "cells absent") -> Part:
    """A part from per-seed observations: value [interval] (``intervals.seed_summary``),
    ``judge`` and its replicate draws (``intervals.normal_replicates``).

    With ``log`` (a positive quantity) exact zeros are counted in the note and left out of the
    log-scale interval and its draws; all zeros give the exact value 0.
    """
    cells = tuple(getattr(values, "attrs", {}).get("cells", ()))
    raw = intervals.finite(values)
    zeros = int((raw <= 0).sum()) if log else 0
    x = raw[raw > 0] if log else raw
    if zeros:
        note = join_notes(note, f"{zeros} of {len(raw)} seeds exactly 0, left out of the log-scale interval")
    if len(x) == 0:
        if zeros:
            verdict = judge(np.float64(0.0), np.float64(0.0), np.float64(0.0))
            return Part(name, 0.0, 0.0, 0.0, zeros, str(verdict), note, decisive, intervals.EXACT)
        return missing(name, join_notes(absent, note), decisive)
    iv = intervals.seed_interval(x, log)
    n = len(x)
    if n < MIN_SEEDS:
        # Shown (the seeds' range), not decided: every seed past a threshold is likely by
        # chance with 2 or 3 seeds, and resampling them cannot tell (it only repeats them).
        note = join_notes(note, f"{n} seed{'s' if n != 1 else ''}: shown, not decided (needs {MIN_SEEDS})")
        return Part(name, iv.value, iv.low, iv.high, n, INCONCLUSIVE, note, decisive, iv.method,
                    lambda rng, count, confidence: np.full(count, INCONCLUSIVE, dtype=object), cells=cells,
                    simulate=_simulator(x, log, judge) if n >= 2 else None, judge=judge)

    def draws(rng: np.random.Generator, count: int, confidence: float) -> np.ndarray:
        drawn = intervals.normal_replicates(np.log(x) if log else x, count, rng)
        return judge(*intervals.seed_summary(np.exp(drawn) if log else drawn, log, confidence))

    def at(confidence):
        return intervals.seed_summary(x, log, confidence)

    return Part(name, iv.value, iv.low, iv.high, n, str(judge(iv.value, iv.low, iv.high)), note, decisive,
                iv.method, draws, at=at, judge=judge, cells=cells, simulate=_simulator(x, log, judge),
                evidence=("seed", x.tobytes(), log))


def _simulator(x: np.ndarray, log: bool, judge: Judge) -> Simulate:
    """Studies of n seeds drawn from a normal model at the sample's mean and spread (on the log
    scale for a positive quantity), judged by ``judge`` at a given confidence."""
    y = np.log(x) if log else x
    mean, spread = float(y.mean()), float(y.std(ddof=1))

    def simulate(rng: np.random.Generator, n: int, count: int, confidence: float) -> np.ndarray:
        drawn = mean + spread * rng.standard_normal((count, n))
        return judge(*intervals.seed_summary(np.exp(drawn) if log else drawn, log, confidence))

    return simulate


def share_part(name: str, k: int, n: int, judge: Judge, *, note: str = "", decisive: bool = True) -> Part:
    """A share of k runs out of n with its Wilson interval; draws are beta-binomial replicates."""
    if n == 0:
        return missing(name, "no runs", decisive)
    value, low, high = (float(v) for v in intervals.wilson_interval(k, n))

    def draws(rng: np.random.Generator, count: int, confidence: float) -> np.ndarray:
        return judge(*intervals.wilson_interval(intervals.binomial_replicates(k, n, count, rng), n, confidence))

    def at(confidence):
        return _levels(lambda c: intervals.wilson_interval(k, n, c), confidence)

    return Part(name, value, low, high, n, str(judge(value, low, high)), join_notes(note, f"{k} of {n}"), decisive,
                intervals.WILSON, draws, at=at, judge=judge, evidence=("wilson", k, n))


def share_difference_part(name: str, k1: int, n1: int, k2: int, n2: int, judge: Judge, *, note: str = "",
                          decisive: bool = True) -> Part:
    """k1/n1 - k2/n2 with Newcombe's interval; draws are beta-binomial replicates of each group."""
    if n1 == 0 or n2 == 0:
        return missing(name, "needs runs in both groups", decisive)
    value, low, high = (float(v) for v in intervals.newcombe_interval(k1, n1, k2, n2))

    def draws(rng: np.random.Generator, count: int, confidence: float) -> np.ndarray:
        return judge(*intervals.newcombe_interval(intervals.binomial_replicates(k1, n1, count, rng), n1,
                                                  intervals.binomial_replicates(k2, n2, count, rng), n2, confidence))

    def at(confidence):
        return _levels(lambda c: intervals.newcombe_interval(k1, n1, k2, n2, c), confidence)

    return Part(name, value, low, high, n1 + n2, str(judge(value, low, high)), note, decisive,
                intervals.NEWCOMBE, draws, at=at, judge=judge, evidence=("newcombe", k1, n1, k2, n2))


def welch_part(name: str, x: Iterable[float], y: Iterable[float], judge: Judge, *, note: str = "",
               decisive: bool = True) -> Part:
    """mean(x) - mean(y) of unpaired seeds with Welch's interval; draws are normal replicates of
    each group."""
    x, y = intervals.finite(x), intervals.finite(y)
    if len(x) == 0 or len(y) == 0:
        return missing(name, "needs both groups", decisive)
    value, low, high = (float(v) for v in intervals.welch_interval(x, y))

    def draws(rng: np.random.Generator, count: int, confidence: float) -> np.ndarray:
        return judge(*intervals.welch_interval(intervals.normal_replicates(x, count, rng),
                                               intervals.normal_replicates(y, count, rng), confidence))

    def at(confidence):
        return _levels(lambda c: intervals.welch_interval(x, y, c), confidence)

    return Part(name, value, low, high, len(x) + len(y), str(judge(value, low, high)), note, decisive,
                intervals.WELCH, draws, at=at, judge=judge, evidence=("welch", x.tobytes(), y.tobytes()))


def median_part(name: str, values: Iterable[float], judge: Judge, *, note: str = "",
                decisive: bool = True) -> Part:
    """The median of per-run values with its distribution-free interval; draws resample the runs."""
    x = intervals.finite(values)
    if len(x) == 0:
        return missing(name, "no measurable runs", decisive)
    value, low, high = (float(v) for v in intervals.median_interval(x))
    n = len(x)

    def draws(rng: np.random.Generator, count: int, confidence: float) -> np.ndarray:
        return judge(*intervals.median_interval(x[rng.integers(0, n, size=(count, n))], confidence))

    def at(confidence):
        return _levels(lambda c: intervals.median_interval(x, c), confidence)

    return Part(name, value, low, high, n, str(judge(value, low, high)), note, decisive, intervals.MEDIAN, draws,
                at=at, judge=judge, evidence=("median", x.tobytes()))


def exact_zero_part(name: str, peaks: Iterable[float], note: str = "", decisive: bool = True) -> Part:
    """'Exactly zero in every run': the largest |value| over runs (one peak per run) must be 0;
    draws resample the runs."""
    x = np.abs(intervals.finite(peaks))
    if len(x) == 0:
        return missing(name, "no probed values", decisive)
    n = len(x)

    def draws(rng: np.random.Generator, count: int, confidence: float) -> np.ndarray:
        return exactly_zero(x[rng.integers(0, n, size=(count, n))].max(axis=1))

    peak = float(x.max())
    return Part(name, peak, math.nan, math.nan, n, str(exactly_zero(peak)), note, decisive, intervals.EXACT, draws)


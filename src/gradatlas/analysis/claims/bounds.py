"""A part whose runs of unknown outcome are counted both ways.

A diverged run has no trained network to measure: leaving it out keeps only the runs that
survived, which biases a share measured on the rest (survivorship). ``bounds_part`` counts
every such run both ways instead: ``lower`` holds the per-seed values with them at the
smallest value they could have had, ``upper`` at the largest. Its interval runs from the
lower bound's low end to the upper bound's high end, so the rule decides only what holds
whichever way those runs went: ``below`` is supported only if even the upper bound's interval
lies below, and contradicted only if even the lower bound's lies above (``above`` likewise).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradatlas.analysis import intervals
from gradatlas.analysis.claims.parts import MIN_SEEDS, Part, fmt, join_notes, seed_part
from gradatlas.analysis.claims.verdicts import Judge

BOUNDS = "t, bounds"


def bounds_part(name: str, lower: pd.Series, upper: pd.Series, judge: Judge, *, unknown: int, what: str,
                note: str = "", decisive: bool = True, absent: str = "cells absent") -> Part:
    """A per-seed part over ``lower`` and ``upper`` (the same seeds; see the module docstring).

    Args:
        unknown: how many runs are counted both ways (0: the part is ``seed_part`` of ``lower``).
        what: how the two ways count them, e.g. "diverged runs counted alive / dead".
    """
    common = lower.index.intersection(upper.index)
    lower, upper = lower[common].astype(float), upper[common].astype(float)
    keep = np.isfinite(lower.to_numpy()) & np.isfinite(upper.to_numpy())
    xl, xu = lower.to_numpy()[keep], upper.to_numpy()[keep]
    if unknown == 0 or len(xl) < MIN_SEEDS or np.array_equal(xl, xu):
        return seed_part(name, xl, judge, note=note, decisive=decisive, absent=absent)
    lo, hi = intervals.seed_interval(xl), intervals.seed_interval(xu)
    note = join_notes(note, f"{unknown} run(s) of unknown outcome; {what}: {fmt(lo.value)} [{fmt(lo.low)}, "
                            f"{fmt(lo.high)}] / {fmt(hi.value)} [{fmt(hi.low)}, {fmt(hi.high)}]")

    def draws(rng: np.random.Generator, count: int, confidence: float) -> np.ndarray:
        # One stream for both bounds: the same seeds' replicates, so the two stay coupled.
        state = int(rng.integers(2 ** 63))
        low_draw = intervals.normal_replicates(xl, count, np.random.default_rng(state))
        high_draw = intervals.normal_replicates(xu, count, np.random.default_rng(state))
        value, low, _ = intervals.seed_summary(low_draw, False, confidence)
        _, _, high = intervals.seed_summary(high_draw, False, confidence)
        return judge(value, low, high)

    def at(confidence):
        value, low, _ = intervals.seed_summary(xl, False, confidence)
        _, _, high = intervals.seed_summary(xu, False, confidence)
        return value, low, high

    cells = tuple(sorted(set(lower.attrs.get("cells", ())) | set(upper.attrs.get("cells", ()))))
    return Part(name, lo.value, lo.low, hi.high, len(xl), str(judge(lo.value, lo.low, hi.high)), note, decisive,
                BOUNDS, draws, at=at, judge=judge, cells=cells)

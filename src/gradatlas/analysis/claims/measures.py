"""Measures that several claims share: skill, diverged and failed runs, per-seed series, the
capped log10 ratio of norms, and the per-layer factors of a set of runs.

Conventions. "Skill" puts task metrics on one scale, 0 = chance and 1 = perfect:
(accuracy - chance) / (1 - chance), or (chance - mse) / chance for the adding problem. A
diverged run has no accuracy or loss (NaN; never counted as a number); a run that did not
diverge but ``failed_to_train`` (final training loss above its initial loss, or skill at
chance) is reported apart from diverged runs. The seed is the replicate: a part that pools
several cells averages them per seed first (``seed_mean``).
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd

from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold

# A cell is "at chance" when its mean skill is below FAIL_SKILL; a cell "learns" when the
# interval's lower bound of its skill is above TRAIN_SKILL.
FAIL_SKILL = 0.05
TRAIN_SKILL = 0.2
# The same two lines as named thresholds, for the claims that decide on them (and for the
# sensitivity analysis, which moves them); ``failed_to_train`` and the tables keep the defaults.
FAIL_SKILL_THRESHOLD = Threshold("FAIL_SKILL", FAIL_SKILL, "mean skill below which a cell is at chance",
                                 0.01, 0.2, log=True)
TRAIN_SKILL_THRESHOLD = Threshold("TRAIN_SKILL", TRAIN_SKILL, "skill whose interval must lie above it for a cell to learn",
                                  0.05, 0.6, log=True)
# log10 ratios of norms that hit exactly 0 (or overflow) are capped at this many decades.
CAP_DECADES = 30.0


def log10_ratio(num: float, den: float) -> float:
    """log10(num / den) for non-negative norms, capped at +-CAP_DECADES (0 / x = -cap)."""
    if not (np.isfinite(num) or num == np.inf) or not (np.isfinite(den) or den == np.inf):
        return math.nan
    if num <= 0 and den <= 0:
        return math.nan
    if num <= 0 or den == np.inf:
        return -CAP_DECADES
    if den <= 0 or num == np.inf:
        return CAP_DECADES
    return float(np.clip(math.log10(num / den), -CAP_DECADES, CAP_DECADES))


def diverged(runs: pd.DataFrame) -> pd.Series:
    """Whether each run diverged (False for a table without statuses)."""
    if "status" not in runs:
        return pd.Series(False, index=runs.index)
    return runs["status"].astype(str) == "diverged"


def skill(runs: pd.DataFrame) -> pd.Series:
    """Task skill per run: 0 = chance, 1 = perfect; NaN for a diverged run (its accuracy is
    undefined, never counted as a number)."""
    metric = runs["metric"].astype(str)
    chance = runs["chance"].astype(float)
    value = runs["test_metric"].astype(float)
    acc = (value - chance) / (1.0 - chance)
    mse = (chance - value) / chance
    out = pd.Series(np.where(metric == "mse", mse, acc), index=runs.index, dtype=float)
    out[diverged(runs)] = math.nan
    return out


def outcome(runs: pd.DataFrame) -> pd.Series:
    """Test metric per run; NaN for a diverged run."""
    value = runs["test_metric"].astype(float).copy()
    value[diverged(runs)] = math.nan
    return value


def failed_to_train(runs: pd.DataFrame) -> pd.Series:
    """Whether a run that did not diverge failed to train: its final training loss is above its
    initial loss (``first_loss``) or not finite, or its test skill is at chance (below
    ``FAIL_SKILL``). Diverged runs are False here: they are counted as diverged, apart.

    The one definition of "failed to train" (tables and figures use it too).
    """
    final, first = runs["final_train_loss"].astype(float), runs["first_loss"].astype(float)
    worse = ~np.isfinite(final) | (final > first)
    chance = skill(runs) < FAIL_SKILL
    return (worse | chance) & ~diverged(runs)


def diverged_note(runs: pd.DataFrame) -> str:
    """'k diverged runs left out' when there are any."""
    k = int(diverged(runs).sum())
    return f"{k} diverged run{'s' if k != 1 else ''} left out (no accuracy)" if k else ""


# Per-seed series carry the cells they were measured in (``CELLS_ATTR`` of ``Series.attrs``:
# (study, cell) pairs), through ``paired``, ``ratio`` and ``seed_mean``, so that a sub-claim
# knows its cells and the seed rule (``claims.seeds``) can say which cells need more seeds.
CELLS_ATTR = "cells"


def _with_cells(series: pd.Series, *sources: pd.Series) -> pd.Series:
    cells = set()
    for source in sources:
        cells |= set(getattr(source, "attrs", {}).get(CELLS_ATTR, ()))
    series.attrs[CELLS_ATTR] = tuple(sorted(cells))
    return series


def by_seed(frame: pd.DataFrame, values: pd.Series | Iterable[float]) -> pd.Series:
    """``values`` (aligned with ``frame``) indexed by the runs' seeds, averaged per seed; its
    ``attrs["cells"]`` names the (study, cell) pairs of ``frame``."""
    series = pd.Series(list(values), index=frame["seed"].to_numpy(), dtype=float)
    out = series.groupby(level=0).mean()
    # A set of pairs, not drop_duplicates: 5 ms a call, a third of the sensitivity sweep's time in claim 6.
    pairs = (set(zip(frame["study"].astype(str), frame["cell"].astype(str)))
             if {"study", "cell"} <= set(frame.columns) else set())
    out.attrs[CELLS_ATTR] = tuple(sorted(pairs))
    return out


def paired(a: pd.Series, b: pd.Series) -> pd.Series:
    """a - b over the seeds (index) both have, indexed by seed."""
    common = a.index.intersection(b.index)
    return _with_cells((a[common] - b[common]).astype(float), a, b)


def ratio(a: pd.Series, b: pd.Series) -> pd.Series:
    """a / b over the seeds (index) both have, indexed by seed (for positive quantities)."""
    common = a.index.intersection(b.index)
    return _with_cells((a[common] / b[common]).astype(float), a, b)


def seed_mean(pieces: Iterable[pd.Series]) -> pd.Series:
    """Per-seed observations from several cells, averaged per seed (the seed is the replicate)."""
    pieces = [p for p in pieces if len(p)]
    if not pieces:
        return pd.Series(dtype=float)
    return _with_cells(pd.concat(pieces).groupby(level=0).mean(), *pieces)


def deepest(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` at its largest depth."""
    if frame.empty:
        return frame
    return frame[frame["depth"] == frame["depth"].max()]


def first_last_ratio(profile: pd.Series) -> float:
    """log10 of the first over the last hidden layer's value (capped, see ``log10_ratio``)."""
    if len(profile) < 2:
        return math.nan
    return log10_ratio(float(profile.iloc[0]), float(profile.iloc[-1]))


def mlp_runs(tables: Tables, study: str, **factors) -> pd.DataFrame:
    """The MLP runs of ``study`` with the given factors (``Tables.select``)."""
    frame = tables.select(study, **factors)
    if "model" in frame:
        frame = frame[frame["model"] == "mlp"]
    return frame


def layer_factors(t: Tables, runs: pd.DataFrame) -> tuple[pd.Series, str]:
    """Per-seed measured factors of ``runs`` and a note on the underflowing layers left out."""
    values = by_seed(runs, [t.factor(r) for r in runs["run"]]) if not runs.empty else pd.Series(dtype=float)
    flagged = sum(t.underflow_count(r) for r in runs["run"])
    note = f"{flagged} underflowing layer(s) left out of the fits" if flagged else ""
    return values, note


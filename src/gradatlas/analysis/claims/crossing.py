"""Where a measured per-layer factor crosses 1 along the weight variance, per seed; and where
training stops along depth, per seed (claims 4 and 16)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gradatlas.analysis.claims.summary import Tables

SIGMA_W2 = "sigma_w2"


def with_sigma_w2(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with sigma_w^2 = gain^2 (LeCun-normal weights: variance gain^2 / fan_in)."""
    return runs.assign(**{SIGMA_W2: runs["gain"].astype(float) ** 2})


def first_crossing(x: np.ndarray, factor: np.ndarray) -> float:
    """The x where ``factor`` first crosses 1 from below, interpolating log factor linearly in
    log x between the two grid points around it; NaN without such a crossing (non-finite or
    non-positive factors are skipped)."""
    order = np.argsort(x)
    x, factor = np.asarray(x, float)[order], np.asarray(factor, float)[order]
    keep = np.isfinite(factor) & (factor > 0) & (x > 0)
    lx, ly = np.log(x[keep]), np.log(factor[keep])
    for i in range(len(lx) - 1):
        if ly[i] < 0 <= ly[i + 1]:
            return float(math.exp(lx[i] + (lx[i + 1] - lx[i]) * (-ly[i]) / (ly[i + 1] - ly[i])))
    return math.nan


def seed_crossings(t: Tables, runs: pd.DataFrame) -> pd.Series:
    """Per seed, the sigma_w^2 where the measured factor of ``runs`` first crosses 1 (NaN: none)."""
    if runs.empty:
        return pd.Series(dtype=float)
    frame = with_sigma_w2(runs).assign(factor=[t.factor(r) for r in runs["run"]])
    return frame.groupby("seed").apply(lambda g: first_crossing(g[SIGMA_W2].to_numpy(), g["factor"].to_numpy()),
                                       include_groups=False).astype(float)


def boundary_depth(depths: np.ndarray, trains: np.ndarray) -> float:
    """The depth where training stops: the geometric mean of the deepest depth that trains below
    the first that does not and that first one; NaN when every depth trains or none does (the
    boundary lies outside the grid)."""
    order = np.argsort(depths)
    depths, trains = np.asarray(depths, float)[order], np.asarray(trains, bool)[order]
    if trains.all() or not trains[0]:
        return math.nan
    first_fail = int(np.argmin(trains))
    return float(math.sqrt(depths[first_fail - 1] * depths[first_fail]))

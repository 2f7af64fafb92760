"""Claim 16: criticality and trainable depth (Poole et al. 2016; Schoenholz et al. 2017)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd

from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.crossing import SIGMA_W2, boundary_depth, seed_crossings, with_sigma_w2
from gradatlas.analysis.claims.measures import TRAIN_SKILL_THRESHOLD, mlp_runs, skill
from gradatlas.analysis.claims.parts import MIN_SEEDS, Part, join_notes, missing, seed_part, share_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, censored_between, reported, within
from gradatlas.analysis.theory import depth_scales, iterated

FACTOR_STUDY = "criticality"
TRAIN_STUDY = "trainable_depth"
ACTIVATION = "tanh"
CROSSING_TOLERANCE = Threshold("CROSSING_TOLERANCE", 0.1, "largest relative distance |measured / predicted - 1| of "
                               "the sigma_w^2 where the factor crosses 1", 0.02, 0.3, log=True)
DEPTH_CONSTANT_LOW = Threshold("DEPTH_CONSTANT_LOW", 2.0, "smallest trainable depth / xi_c of order xi_c "
                               "(Schoenholz et al.: about 6)", 1.0, 4.0, log=True)
DEPTH_CONSTANT_HIGH = Threshold("DEPTH_CONSTANT_HIGH", 18.0, "largest trainable depth / xi_c of order xi_c",
                                9.0, 36.0, log=True)
BOUNDARY_AGREEMENT = Threshold("BOUNDARY_AGREEMENT", 0.8, "share of (sigma_w^2, depth) cells whose training agrees "
                               "with depth < c xi_c", 0.6, 0.95)
TRAIN_SKILL = TRAIN_SKILL_THRESHOLD
THRESHOLDS = (CROSSING_TOLERANCE, DEPTH_CONSTANT_LOW, DEPTH_CONSTANT_HIGH, BOUNDARY_AGREEMENT, TRAIN_SKILL)


@lru_cache(maxsize=256)
def xi_c(sigma_w2: float, sigma_b2: float) -> float:
    """The correlation depth scale of tanh at (sigma_w^2, sigma_b^2) (``theory.depth_scales``)."""
    return depth_scales.depth_scales(ACTIVATION, sigma_w2, sigma_b2)["xi_c"]


@lru_cache(maxsize=64)
def predicted_crossing(sigma_b2: float, low: float, high: float, depth: int) -> float:
    """Where the iterated map's fitted factor crosses 1 in [low, high] (``theory.iterated``)."""
    return iterated.crossing_sigma_w2(ACTIVATION, low, high, sigma_b2, iterated.MNIST1D_MEAN_SQUARE, depth)


def crossing_parts(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per sigma_b^2: the measured crossing of 1 against the iterated map's (decisive) and against
    the fixed point's critical line chi_1 = 1 (reported)."""
    runs = mlp_runs(t, FACTOR_STUDY, activation=ACTIVATION)
    if runs.empty:
        return [missing("crossing of the per-layer factor", f"no {FACTOR_STUDY} runs")]
    runs = with_sigma_w2(runs).assign(sigma_b2=runs["bias_std"].fillna(0.0).astype(float) ** 2)
    parts = []
    for sigma_b2, part in runs.groupby("sigma_b2"):
        low, high = float(part[SIGMA_W2].min()), float(part[SIGMA_W2].max())
        depth = int(part["depth"].max())
        predicted = predicted_crossing(round(float(sigma_b2), 12), low, high, depth)
        critical = depth_scales.critical_sigma_w2(ACTIVATION, float(sigma_b2))
        measured = seed_crossings(t, part)
        name = f"sigma_b^2 = {sigma_b2:.3g}: log(measured / predicted sigma_w^2 where the factor crosses 1)"
        if not math.isfinite(predicted):
            parts.append(missing(name, f"the iterated map does not cross 1 in [{low:.3g}, {high:.3g}]"))
            continue
        tol = math.log1p(th.CROSSING_TOLERANCE)
        note = (f"predicted {predicted:.3g} (map iterated through depth {depth}); fixed-point critical line "
                f"{critical:.3g}; {int(measured.isna().sum())} seed(s) without a crossing")
        parts.append(seed_part(name, np.log(measured.to_numpy() / predicted), within(tol), note=note,
                               absent="no seed crosses 1"))
        parts.append(seed_part(f"sigma_b^2 = {sigma_b2:.3g}: log(measured / fixed-point critical sigma_w^2)",
                               np.log(measured.to_numpy() / critical), reported, decisive=False,
                               note=f"chi_1 = 1 at sigma_w^2 = {critical:.3g} (infinite depth)"))
    return parts


def trainability(t: Tables, th: ThresholdValues) -> pd.DataFrame:
    """Per (seed, sigma_w^2, depth) of the training study: the mean skill, whether it trains and xi_c."""
    runs = mlp_runs(t, TRAIN_STUDY, activation=ACTIVATION)
    if runs.empty:
        return pd.DataFrame(columns=["seed", SIGMA_W2, "sigma_b2", "depth", "skill", "trains", "xi_c"])
    frame = with_sigma_w2(runs).assign(sigma_b2=runs["bias_std"].fillna(0.0).astype(float) ** 2,
                                       skill=skill(runs).fillna(0.0).to_numpy())
    frame["trains"] = frame["skill"] >= th.TRAIN_SKILL
    frame["xi_c"] = [xi_c(round(w, 12), round(b, 12)) for w, b in zip(frame[SIGMA_W2], frame["sigma_b2"])]
    return frame[["seed", SIGMA_W2, "sigma_b2", "depth", "skill", "trains", "xi_c"]]


def depth_constants(cells: pd.DataFrame) -> pd.Series:
    """Per seed, c = exp(mean over sigma_w^2 columns of log(boundary depth / xi_c)), over the columns
    whose boundary lies inside the depth grid and whose xi_c is below the deepest depth (beyond it
    the budget, not xi_c, limits the depth)."""
    deepest = float(cells["depth"].max()) if len(cells) else math.nan
    out = {}
    for seed, part in cells.groupby("seed"):
        logs = []
        for _, column in part.groupby(SIGMA_W2):
            scale = float(column["xi_c"].iloc[0])
            bound = boundary_depth(column["depth"].to_numpy(), column["trains"].to_numpy())
            if math.isfinite(bound) and math.isfinite(scale) and scale < deepest:
                logs.append(math.log(bound / scale))
        out[seed] = math.exp(float(np.mean(logs))) if logs else math.nan
    return pd.Series(out, dtype=float)


def depth_resolution(depths) -> float:
    """How far the depth grid leaves a boundary open: sqrt of the largest ratio of neighbouring
    depths (a boundary between depths d and 2d, put at d sqrt 2, may lie anywhere in [d, 2d])."""
    grid = np.unique(np.asarray(depths, dtype=float))
    return float(math.sqrt(np.max(grid[1:] / grid[:-1]))) if len(grid) > 1 else math.inf


def fitted_constant(constants: pd.Series) -> float:
    """The depth constant c over the seeds: the geometric mean of their finite constants (NaN: none)."""
    return float(np.exp(np.nanmean(np.log(constants)))) if constants.notna().any() else math.nan


def training_parts(t: Tables, th: ThresholdValues) -> list[Part]:
    """The fitted depth constant c (trainable depth = c xi_c) and the share of cells it classifies right."""
    cells = trainability(t, th)
    name = "trainable depth / xi_c: the constant c, fitted per seed"
    if cells.empty:
        return [missing(name, f"no {TRAIN_STUDY} runs")]
    constants = depth_constants(cells)
    resolution = depth_resolution(cells["depth"])
    parts = [seed_part(name, constants.to_numpy(),
                       censored_between(th.DEPTH_CONSTANT_LOW, th.DEPTH_CONSTANT_HIGH, resolution), log=True,
                       note=f"depth grid resolves c to a factor {resolution:.3g}",
                       absent="no sigma_w^2 column with a boundary inside the depth grid")]
    c = fitted_constant(constants)
    if not math.isfinite(c):
        parts.append(missing("cells whose training agrees with depth < c xi_c", "no fitted c"))
        return parts
    mean = cells.groupby([SIGMA_W2, "depth"]).agg(skill=("skill", "mean"), xi_c=("xi_c", "first")).reset_index()
    agrees = (mean["skill"] >= th.TRAIN_SKILL) == (mean["depth"] < c * mean["xi_c"].fillna(math.inf))
    # The boundary depth < c xi_c is only as good as c: from fewer seeds than a part decides on,
    # the share is shown, not decided.
    fitted_seeds = int(constants.notna().sum())
    decided = fitted_seeds >= MIN_SEEDS
    part = share_part(f"cells whose training agrees with depth < c xi_c (c = {c:.3g})", int(agrees.sum()),
                      len(agrees), above(th.BOUNDARY_AGREEMENT) if decided else reported, decisive=decided)
    if not decided:
        part.note = join_notes(part.note, f"c fitted from {fitted_seeds} seed(s) (needs {MIN_SEEDS}): not decided")
    parts.append(part)
    return parts


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """The factor's crossing on the critical line, per sigma_b^2; trainability against xi_c."""
    return crossing_parts(t, th) + training_parts(t, th)


CLAIM = Claim(
    16, "Criticality sets the trainable depth",
    "At initialization the per-layer gradient factor crosses 1 on the critical line chi_1 = 1 of the "
    "(sigma_w^2, sigma_b^2) plane (Poole et al. 2016); a tanh network trains only to a depth of order the "
    "correlation depth scale xi_c, about 6 xi_c (Schoenholz et al. 2017).",
    (FACTOR_STUDY, TRAIN_STUDY),
    "measured / predicted sigma_w^2 where the factor crosses 1, per sigma_b^2; trainable depth / xi_c",
    rule_text(f"Per sigma_b^2 of {FACTOR_STUDY}: supported if the interval of log(measured / predicted crossing) lies "
              f"within log(1 + {CROSSING_TOLERANCE:g}) of 0, the prediction being the map iterated from the input "
              f"through the depth (the fixed point's chi_1 = 1 is reported beside it); contradicted if it lies "
              f"outside. {TRAIN_STUDY}: a cell trains if its skill reaches {TRAIN_SKILL:g}; per seed the boundary "
              f"depth of each sigma_w^2 (geometric mean of the last depth that trains and the first that does not; "
              f"columns with xi_c above the deepest depth or the boundary outside the grid left out) over xi_c gives c "
              f"(geometric mean): the depth grid leaves each boundary open by r = sqrt(largest ratio of neighbouring "
              f"depths), so c is supported if its interval lies within [{DEPTH_CONSTANT_LOW:g} r, "
              f"{DEPTH_CONSTANT_HIGH:g} / r], contradicted if its mean lies outside [{DEPTH_CONSTANT_LOW:g} / r, "
              f"{DEPTH_CONSTANT_HIGH:g} r]; and the share of cells whose mean "
              f"skill agrees with depth < c xi_c must lie above {BOUNDARY_AGREEMENT:g} (contradicted below; shown, not "
              f"decided, where c rests on fewer than {MIN_SEEDS} seeds)."),
    compute, THRESHOLDS)

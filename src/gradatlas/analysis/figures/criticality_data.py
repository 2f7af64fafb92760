"""What the criticality figures draw, computed by the claims' own code (claims 4 and 16): the
measured per-layer factor per run and cell, the crossings of 1 (measured per seed, iterated
map, fixed point), the trainability cells and the fitted depth constant c. pandas and the
theory only; the claims are imported when called (they import torch, which the registry,
read while the workflow parses, must not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from gradatlas.analysis.figures.spec import NoData

FACTOR_STUDY = "criticality"
TRAIN_STUDY = "trainable_depth"
SWEEP_STUDY = "weight_crossing"
SIGMA_W2 = "sigma_w2"


def study_tables(runs: pd.DataFrame, layers: pd.DataFrame, studies: tuple[str, ...]):
    """The claims' ``Tables`` of the runs of ``studies`` only (the layers of other studies are not
    split), or None when no run of them is in ``runs``."""
    from gradatlas.analysis.claims.summary import Tables

    if runs is None or runs.empty or "study" not in runs:
        return None
    part = runs[runs["study"].astype(str).isin(studies)]
    if part.empty:
        return None
    names = set(part["run"].astype(str))
    if layers is not None and len(layers) and "run" in layers:
        layers = layers[layers["run"].astype(str).isin(names)]
    empty = pd.DataFrame(columns=["run", "step", "t", "quantity", "value"])
    return Tables(part, layers if layers is not None else empty.iloc[0:0], empty)


def geometric_mean(values) -> float:
    """exp(mean(log x)) over the finite positive values; NaN without any."""
    x = np.asarray(list(values), dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    return float(np.exp(np.log(x).mean())) if len(x) else math.nan


def run_factors(t, runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with ``sigma_w2``, ``sigma_b2`` and the measured per-layer ``factor`` of each run
    (``Tables.factor``, the value the claims read)."""
    from gradatlas.analysis.claims.crossing import with_sigma_w2

    bias = runs["bias_std"].astype(float).fillna(0.0) if "bias_std" in runs else pd.Series(0.0, index=runs.index)
    frame = with_sigma_w2(runs).assign(sigma_b2=bias.to_numpy() ** 2)
    return frame.assign(factor=[t.factor(r) for r in frame["run"]])


# ------------------------------------------------------------------ claim 16: the factor's phase diagram

@dataclass(frozen=True)
class Crossing:
    """Where the factor crosses 1 along sigma_w^2 at one sigma_b^2 (or for one activation)."""

    key: object                # sigma_b^2 (claim 16) or the activation (claim 4)
    measured: np.ndarray       # per seed (NaN: that seed does not cross)
    predicted: float           # the map iterated through the depth (NaN: no crossing in the grid)
    fixed_point: float = math.nan  # the fixed point's chi_1 = 1 (claim 16 only)

    @property
    def measured_mean(self) -> float:
        """Geometric mean over the seeds that cross."""
        return geometric_mean(self.measured)

    @property
    def ratio(self) -> float:
        """Measured (geometric mean) over predicted."""
        return self.measured_mean / self.predicted if self.predicted > 0 else math.nan


@dataclass(frozen=True)
class PhaseDiagram:
    """The criticality study: factor per (sigma_w^2, sigma_b^2) cell and the crossings per sigma_b^2."""

    cells: pd.DataFrame        # sigma_w2, sigma_b2, factor (geometric mean over seeds), seeds
    crossings: list[Crossing]
    depth: int
    width: int
    seeds: int
    tolerance: float           # the claim's CROSSING_TOLERANCE


def phase_diagram(runs: pd.DataFrame, layers: pd.DataFrame) -> PhaseDiagram:
    """The measured factor over (sigma_w^2, sigma_b^2) and its crossings of 1 (claim 16's code).

    Raises:
        NoData: without criticality runs.
    """
    from gradatlas.analysis.claims.catalog import criticality
    from gradatlas.analysis.claims.crossing import seed_crossings
    from gradatlas.analysis.claims.measures import mlp_runs
    from gradatlas.analysis.theory import depth_scales

    t = study_tables(runs, layers, (FACTOR_STUDY,))
    chosen = mlp_runs(t, FACTOR_STUDY, activation=criticality.ACTIVATION) if t is not None else pd.DataFrame()
    if chosen.empty:
        raise NoData(f"no {FACTOR_STUDY} runs")
    frame = run_factors(t, chosen)
    cells = (frame.groupby([SIGMA_W2, "sigma_b2"]).agg(factor=("factor", geometric_mean), seeds=("seed", "nunique"))
             .reset_index())
    crossings = []
    for sigma_b2, part in frame.groupby("sigma_b2"):
        low, high = float(part[SIGMA_W2].min()), float(part[SIGMA_W2].max())
        predicted = criticality.predicted_crossing(round(float(sigma_b2), 12), low, high, int(part["depth"].max()))
        crossings.append(Crossing(float(sigma_b2), seed_crossings(t, part).to_numpy(float), predicted,
                                  depth_scales.critical_sigma_w2(criticality.ACTIVATION, float(sigma_b2))))
    th = criticality.CLAIM.threshold_values()
    return PhaseDiagram(cells, crossings, int(frame["depth"].max()), int(frame["width"].max()),
                        int(frame["seed"].nunique()), th.CROSSING_TOLERANCE)


def iterated_crossing_line(sigma_b2s: np.ndarray, low: float, high: float, depth: int) -> np.ndarray:
    """The iterated map's crossing sigma_w^2 at each sigma_b^2 (claim 16's prediction)."""
    from gradatlas.analysis.claims.catalog import criticality

    return np.array([criticality.predicted_crossing(round(float(b), 12), low, high, depth) for b in sigma_b2s])


# ------------------------------------------------------------------ claim 16: trainable depth

@dataclass(frozen=True)
class Trainability:
    """The trainable-depth study: mean skill per (sigma_w^2, depth) cell and the fitted constant c."""

    cells: pd.DataFrame        # sigma_w2, depth, skill (mean over seeds), xi_c, trains, agrees
    sigma_b2: float
    c: float                   # the claim's fit (geometric mean of the per-seed constants)
    c_low: float
    c_high: float
    c_interval: str            # the interval's method
    c_seeds: int
    train_skill: float
    agreement: float           # the claim's BOUNDARY_AGREEMENT
    seeds: int
    width: int


def trainability(runs: pd.DataFrame, layers: pd.DataFrame) -> Trainability:
    """Mean skill per cell, xi_c, and c with its interval, as claim 16 computes them.

    Raises:
        NoData: without trainable_depth runs.
    """
    from gradatlas.analysis.claims.catalog import criticality

    t = study_tables(runs, layers, (TRAIN_STUDY,))
    th = criticality.CLAIM.threshold_values()
    per_seed = criticality.trainability(t, th) if t is not None else pd.DataFrame()
    if per_seed.empty:
        raise NoData(f"no {TRAIN_STUDY} runs")
    constants = criticality.depth_constants(per_seed)
    c = criticality.fitted_constant(constants)
    part = criticality.training_parts(t, th)[0]
    cells = (per_seed.groupby([SIGMA_W2, "depth"]).agg(skill=("skill", "mean"), xi_c=("xi_c", "first"))
             .reset_index())
    cells["trains"] = cells["skill"] >= th.TRAIN_SKILL
    predicted = cells["depth"] < (c * cells["xi_c"].fillna(math.inf) if math.isfinite(c) else math.nan)
    cells["agrees"] = (cells["trains"] == predicted) if math.isfinite(c) else True
    chosen = t.runs[t.runs["study"] == TRAIN_STUDY]
    return Trainability(cells, float(per_seed["sigma_b2"].iloc[0]), c, part.ci_low, part.ci_high, part.interval,
                        part.n, th.TRAIN_SKILL, th.BOUNDARY_AGREEMENT, int(per_seed["seed"].nunique()),
                        int(chosen["width"].astype(float).max()))


def xi_c_line(sigma_w2s: np.ndarray, sigma_b2: float) -> np.ndarray:
    """xi_c of tanh along sigma_w^2 at ``sigma_b2`` (the claim's ``xi_c``; inf on the critical line)."""
    from gradatlas.analysis.claims.catalog import criticality

    return np.array([criticality.xi_c(round(float(w), 12), round(float(sigma_b2), 12)) for w in sigma_w2s])


# ------------------------------------------------------------------ claim 4: the crossing per activation

@dataclass(frozen=True)
class Sweep:
    """The weight_crossing study: the measured factor per run and the crossings per activation."""

    runs: pd.DataFrame         # activation, seed, sigma_w2, factor
    crossings: list[Crossing]
    depth: int
    width: int
    seeds: int
    tolerance: float


def sweep(runs: pd.DataFrame, layers: pd.DataFrame) -> Sweep:
    """The per-layer factor along sigma_w^2 per activation and its crossings (claim 4's code).

    Raises:
        NoData: without weight_crossing runs.
    """
    from gradatlas.analysis.claims.catalog import weight_scale
    from gradatlas.analysis.claims.crossing import seed_crossings
    from gradatlas.analysis.claims.measures import mlp_runs
    from gradatlas.analysis.figures import levels

    t = study_tables(runs, layers, (SWEEP_STUDY,))
    chosen = mlp_runs(t, SWEEP_STUDY, init="lecun_normal", norm="none") if t is not None else pd.DataFrame()
    if chosen.empty:
        raise NoData(f"no {SWEEP_STUDY} runs")
    frame = run_factors(t, chosen)
    crossings = []
    for act in levels.order("activation", frame["activation"]):
        part = frame[frame["activation"] == act]
        low, high = float(part[SIGMA_W2].min()), float(part[SIGMA_W2].max())
        crossings.append(Crossing(act, seed_crossings(t, part).to_numpy(float),
                                  weight_scale.predicted_crossing(act, low, high, int(part["depth"].max()))))
    th = weight_scale.CLAIM.threshold_values()
    return Sweep(frame[["activation", "seed", SIGMA_W2, "factor", "depth"]], crossings, int(frame["depth"].max()),
                 int(frame["width"].max()), int(frame["seed"].nunique()), th.CROSSING_TOLERANCE)


def predicted_factor_line(activation: str, sigma_w2s: np.ndarray, depth: int) -> np.ndarray:
    """The iterated map's fitted factor along sigma_w^2 (claim 4's prediction, zero biases)."""
    from gradatlas.analysis.claims.catalog import weight_scale

    return np.array([weight_scale.predicted(activation, round(float(w), 12), depth) for w in sigma_w2s])


def outside(crossing: Crossing, tolerance: float) -> Optional[str]:
    """Why a crossing misses its prediction (None where it is within the tolerance): no measured
    crossing, no predicted one, or the ratio measured / predicted beyond 1 +- tolerance."""
    if not math.isfinite(crossing.predicted):
        return "no predicted crossing" if math.isfinite(crossing.measured_mean) else None
    if not math.isfinite(crossing.measured_mean):
        return "no measured crossing"
    if abs(math.log(crossing.ratio)) > math.log1p(tolerance):
        return f"measured / predicted {crossing.ratio:.2f}"
    return None

"""Claim 18: at initialization the fluctuation of the squared gradient is set by beta = sum 1/n_l."""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple, Optional

import numpy as np
import pandas as pd

from gradatlas.analysis import theory
from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import mlp_runs
from gradatlas.analysis.claims.parts import Part, missing, seed_part
from gradatlas.analysis.claims.summary import Tables, per_tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, within

STUDY = "width_fluctuations"
# Cells whose beta agree to this relative difference count as equal-beta pairs.
EQUAL_BETA = 0.02
# Same-depth pairs compared for the beta dependence differ in beta by at least this factor.
BETA_SPREAD = 1.5
THEORY_TOLERANCE = Threshold("THEORY_TOLERANCE", 0.2, "|ln(measured / predicted Var[ln r])| that supports", 0.05, 0.7,
                             log=True)
DEPTH_TOLERANCE = Threshold("DEPTH_TOLERANCE", 0.3, "|elasticity of Var[ln r] in depth at equal beta| that supports "
                            "(depth alone: 1)", 0.05, 0.7, log=True)
BETA_BOUND = Threshold("BETA_BOUND", 0.5, "elasticity of Var[ln r] in beta at equal depth above which beta sets it "
                       "(theory about 1; depth alone: 0)", 0.2, 0.9)
MEAN_TOLERANCE = Threshold("MEAN_TOLERANCE", 2.0, "|slope of E[r] in beta| that counts as flat (E[r] = 1 under He; "
                           f"Var[ln r]'s slope: about {theory.LOG_VARIANCE_PER_BETA:g})", 0.5, 4.0, log=True)
THRESHOLDS = (THEORY_TOLERANCE, DEPTH_TOLERANCE, BETA_BOUND, MEAN_TOLERANCE)
QUANTITIES = ("log_gain_mean", "log_gain_var", "gain_mean")


def cell_samples(t: Tables) -> pd.DataFrame:
    """One row per run with a finite backward gain at hidden layer 0: cell, seed, depth, beta,
    the predicted Var[ln r], and per run ``estimate`` (the run's contribution to its cell's
    Var[ln r] over initializations and inputs: its batch variance plus its batch mean's squared
    distance from the cell's mean, so that the mean over a cell's runs is the pooled variance)."""
    runs = mlp_runs(t, STUDY)
    rows = []
    for run in runs.itertuples(index=False):
        arrays = t.layers_of(run.run)
        values = {q: arrays.profile(q, 0) for q in QUANTITIES}
        if any(0 not in v.index for v in values.values()):
            continue
        width_alt = getattr(run, "width_alt", math.nan)
        widths = theory.mlp_widths(int(run.depth), int(run.width), None if pd.isna(width_alt) else float(width_alt))
        rows.append({"cell": run.cell, "seed": run.seed, "depth": int(run.depth), "beta": theory.beta(widths),
                     "predicted": theory.log_gain_moments(widths)[1],
                     **{q: float(values[q].loc[0]) for q in QUANTITIES}})
    frame = pd.DataFrame(rows, columns=["cell", "seed", "depth", "beta", "predicted", *QUANTITIES])
    if frame.empty:
        return frame.assign(estimate=pd.Series(dtype=float))
    frame = frame[np.isfinite(frame[list(QUANTITIES)]).all(axis=1)].copy()
    frame["estimate"] = frame["log_gain_var"] + (frame["log_gain_mean"]
                                                 - frame.groupby("cell")["log_gain_mean"].transform("mean")) ** 2
    return frame


def cell_table(samples: pd.DataFrame) -> pd.DataFrame:
    """Per cell: depth, beta, predicted and measured Var[ln r] (pooled over its runs), ln E[r]
    (of the pooled mean), runs."""
    return samples.groupby("cell").agg(depth=("depth", "first"), beta=("beta", "first"),
                                       predicted=("predicted", "first"), measured=("estimate", "mean"),
                                       log_mean_gain=("gain_mean", lambda g: math.log(g.mean())),
                                       runs=("seed", "size")).reset_index()


def _pairs(cells: pd.DataFrame, same_beta: bool) -> list[tuple[str, str]]:
    """Cell pairs (a, b): equal beta and a deeper than b, or equal depth and a of larger beta."""
    out = []
    for a, b in itertools.permutations(cells.itertuples(index=False), 2):
        if same_beta and abs(a.beta - b.beta) <= EQUAL_BETA * b.beta and a.depth > b.depth:
            out.append((a.cell, b.cell, math.log(a.depth / b.depth)))
        if not same_beta and a.depth == b.depth and a.beta >= BETA_SPREAD * b.beta:
            out.append((a.cell, b.cell, math.log(a.beta / b.beta)))
    return out


def _elasticity_by_seed(samples: pd.DataFrame, pairs) -> pd.Series:
    """Per seed, the mean over pairs (a, b, log step) of ln(estimate_a / estimate_b) / log step."""
    table = samples.pivot_table(index="seed", columns="cell", values="estimate")
    pieces = [np.log(table[a] / table[b]) / step for a, b, step in pairs if a in table and b in table]
    return pd.concat(pieces, axis=1).mean(axis=1).dropna() if pieces else pd.Series(dtype=float)


def _mean_slope_by_seed(samples: pd.DataFrame) -> pd.Series:
    """Per seed, the least-squares slope against beta of each run's batch mean of r (an unbiased
    estimate of E[r]; the log of one run's mean would drift down with the spread between runs)."""
    slopes = {seed: np.polyfit(part["beta"], part["gain_mean"], 1)[0]
              for seed, part in samples.groupby("seed") if part["beta"].nunique() >= 2}
    return pd.Series(slopes, dtype=float)


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Measured against predicted Var[ln r]; its elasticity in depth at equal beta and in beta at
    equal depth; the slope of the mean gain E[r] in beta."""
    m = _measured(t)
    if m is None:
        return [missing("measured / predicted Var[ln r]", f"no {STUDY} runs with backward-gain probes")]
    return [
        seed_part(f"ln(measured / predicted Var[ln r]) at layer 0, mean over {m.cells} cells (fitted slope "
                  f"{m.slope:.3g} per unit beta; {theory.LOG_VARIANCE_PER_BETA:g} at large width)", m.ratio,
                  within(th.THEORY_TOLERANCE), note=m.note),
        seed_part(f"elasticity of Var[ln r] in depth at equal beta ({m.depth_pairs} cell pairs)", m.depth,
                  within(th.DEPTH_TOLERANCE), absent="no two cells of equal beta and different depth"),
        seed_part(f"elasticity of Var[ln r] in beta at equal depth ({m.beta_pairs} cell pairs)", m.beta,
                  above(th.BETA_BOUND), absent="no two cells of equal depth and different beta"),
        seed_part("slope of E[r] in beta (He: flat at 1)", m.mean_slope, within(th.MEAN_TOLERANCE)),
    ]


class _Measured(NamedTuple):
    """The per-seed quantities ``compute`` judges, and what their names and note say."""

    ratio: pd.Series
    depth: pd.Series
    beta: pd.Series
    mean_slope: pd.Series
    cells: int
    slope: float
    depth_pairs: int
    beta_pairs: int
    note: str


@per_tables
def _measured(t: Tables) -> Optional[_Measured]:
    """``_Measured`` from the study's runs alone, once per summary (None without samples)."""
    samples = cell_samples(t)
    if samples.empty:
        return None
    dropped = len(mlp_runs(t, STUDY)) - len(samples)
    by_seed = samples.assign(ratio=np.log(samples["estimate"] / samples["predicted"])).groupby("seed")["ratio"].mean()
    cells = cell_table(samples)
    depth_pairs, beta_pairs = _pairs(cells, same_beta=True), _pairs(cells, same_beta=False)
    return _Measured(by_seed, _elasticity_by_seed(samples, depth_pairs), _elasticity_by_seed(samples, beta_pairs),
                     _mean_slope_by_seed(samples), len(cells),
                     float(np.sum(cells["measured"] * cells["beta"]) / np.sum(cells["beta"] ** 2)),
                     len(depth_pairs), len(beta_pairs),
                     f"{dropped} run(s) with a zero gradient (ln r = -inf) left out" if dropped else "")


CLAIM = Claim(
    18, "Finite width: beta = sum 1/n_l sets the gradient's fluctuation",
    "In He-initialized ReLU MLPs at initialization the mean squared gradient is the same at every depth, but "
    "its fluctuation over initializations and inputs (the variance of its logarithm) grows with beta = sum "
    "1/n_l over the hidden widths, about 5 beta (Hanin 2018; Hanin and Nica 2019), not with depth alone: nets "
    "of different depth and width with equal beta fluctuate alike.",
    (STUDY,),
    "Var[ln r] of the squared backward gain r = ||dLoss/dz_0||^2 / ||dLoss/dout||^2, measured against the "
    "product-of-chi-square prediction",
    rule_text(f"Per seed (the replicate), over the cells of {STUDY}: supported if the interval of the mean "
              f"ln(measured / predicted Var[ln r]) lies within +-{THEORY_TOLERANCE}; the elasticity of Var[ln r] "
              f"in depth between cells of equal beta within +-{DEPTH_TOLERANCE}; its elasticity in beta between "
              f"cells of equal depth above {BETA_BOUND}; and the slope of E[r] in beta within "
              f"+-{MEAN_TOLERANCE}; each contradicted if its interval lies entirely outside."),
    compute, THRESHOLDS)

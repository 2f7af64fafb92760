"""Claim 21: shattered gradients (Balduzzi et al. 2017) at initialization.

The correlation of input gradients at nearby inputs (an arc through input space, points
``SEPARATION`` apart: angle SEPARATION * ARC_STEP) decays exponentially with depth in plain ReLU
MLPs, and more slowly in residual MLPs. The predictions are the mean-field closed forms of
``theory.shattered`` for the networks as they are (zero bias, no batch norm: exponential for
both, the residual's rate smaller; Balduzzi's 1/sqrt(L) needs batch norm). The decay rate is the
slope of log(mean correlation over seeds) against depth, fitted over the study's depths, for
the measurement and the theory alike; its interval is a percentile bootstrap over seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gradatlas.analysis import intervals
from gradatlas.analysis.claims.claim import Claim
from gradatlas.analysis.claims.parts import Part, fmt, missing
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import verdict_above, verdict_below, verdict_within
from gradatlas.analysis.theory.shattered import GRADIENT_CORRELATION, correlation_rows, decay_rate
from gradatlas.run.probes.arc import ARC_STEP

STUDY = "shattered"
SEPARATION = 8  # arc points 8 apart: inputs at an angle of pi / 16
PLAIN, RESIDUAL = "mlp", "resmlp"
BOOTSTRAP = 2000
BOOTSTRAP_SEED = 21
BOOTSTRAP_INTERVAL = "percentile bootstrap over seeds"

MIN_RATE = Threshold("MIN_RATE", 0.01, "decay rate of log(correlation) per layer that counts as decaying",
                     0.001, 0.05, log=True)
RATE_TOL = Threshold("RATE_TOL", 0.25, "relative deviation of a fitted decay rate from the theory's that agrees",
                     0.05, 1.0, log=True)
SLOWER = Threshold("SLOWER", 1.0, "ratio of the residual to the plain decay rate below which the residual decays "
                   "more slowly", 0.5, 1.0)
THRESHOLDS = (MIN_RATE, RATE_TOL, SLOWER)

def _means(rows: pd.DataFrame, rng: np.random.Generator, draws: int) -> tuple[np.ndarray, np.ndarray]:
    """The depths and the mean correlation per depth: row 0 observed, rows 1..draws with the
    seeds of every depth drawn with replacement (each depth's networks are independent)."""
    depths = np.sort(rows["depth"].unique())
    columns = []
    for depth in depths:
        values = rows.loc[rows["depth"] == depth, "correlation"].to_numpy(dtype=np.float64)
        drawn = values[rng.integers(0, len(values), size=(draws, len(values)))].mean(axis=1)
        columns.append(np.concatenate([[values.mean()], drawn]))
    return depths.astype(np.float64), np.column_stack(columns)

def _rates(depths: np.ndarray, means: np.ndarray) -> np.ndarray:
    """The decay rate -d log(mean)/d depth of every row (least squares); NaN where a mean is <= 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.where(means > 0, np.log(np.where(means > 0, means, 1.0)), np.nan)
    x = depths - depths.mean()
    return -(logs - logs.mean(axis=1, keepdims=True)) @ x / (x @ x)

def _theory_rate(rows: pd.DataFrame, model: str) -> float:
    depths = np.sort(rows["depth"].unique())
    sigma_w2 = float(rows["sigma_w2"].median())
    law = GRADIENT_CORRELATION[model]
    return decay_rate(depths, np.array([law(SEPARATION * ARC_STEP, int(d), sigma_w2) for d in depths]))

def bootstrap_part(name: str, statistic, groups: list[pd.DataFrame], judge, *, note: str = "") -> Part:
    """``statistic`` of the groups' decay rates (arrays over draws) with its percentile bootstrap
    interval over seeds (every group resampled within each depth); the stability draws shift
    the interval to a drawn value."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    values = statistic(*(_rates(*_means(g, rng, BOOTSTRAP)) for g in groups))
    value, boot = float(values[0]), values[1:][np.isfinite(values[1:])]
    if not np.isfinite(value) or len(boot) < BOOTSTRAP // 2:
        return missing(name, "too few positive mean correlations to fit a rate")
    def at(confidence):
        alpha = (1 - np.asarray(confidence, dtype=np.float64)) / 2
        low, high = np.quantile(boot, alpha), np.quantile(boot, 1 - alpha)
        return np.full(np.shape(low), value), low, high

    _, low, high = (float(v) for v in at(intervals.CONFIDENCE))

    def draws(rng_draw: np.random.Generator, count: int, confidence: float = intervals.CONFIDENCE) -> np.ndarray:
        _, lo, hi = at(confidence)
        drawn = boot[rng_draw.integers(0, len(boot), count)]
        return judge(drawn, drawn - (value - float(lo)), drawn + (float(hi) - value))

    n = sum(len(g) for g in groups)
    return Part(name, value, low, high, n, str(judge(value, low, high)), note, True, BOOTSTRAP_INTERVAL, draws,
                at=at, judge=judge)

def _laws(rows: pd.DataFrame) -> str:
    """The fitted exponential and power laws of the mean correlation against depth."""
    means = rows.groupby("depth")["correlation"].mean()
    keep = means[means > 0]
    if len(keep) < 2:
        return "no positive mean correlations"
    depth, logc = np.log(keep.index.to_numpy(dtype=float)), np.log(keep.to_numpy())
    exponent = -np.polyfit(depth, logc, 1)[0]
    return (f"exp(-{fmt(decay_rate(keep.index.to_numpy(), keep.to_numpy()))} L) or L^-{fmt(exponent)}; means "
            + ", ".join(f"L={d}: {fmt(v)}" for d, v in means.items()))

def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Plain: decays, at the theory's rate; residual: at its theory's rate, more slowly than plain."""
    runs = t.select(STUDY)
    if runs.empty:
        return [missing("plain MLP: gradient correlation decays exponentially", f"no {STUDY} runs")]
    rows = correlation_rows(runs, {r: t.layers_of(r) for r in runs["run"]}, SEPARATION)
    plain, residual = rows[rows["model"] == PLAIN], rows[rows["model"] == RESIDUAL]
    if plain["depth"].nunique() < 2 or residual["depth"].nunique() < 2:
        return [missing("plain MLP: gradient correlation decays exponentially",
                        "needs input_grad_corr of both models at two depths or more")]
    plain_theory, residual_theory = _theory_rate(plain, PLAIN), _theory_rate(residual, RESIDUAL)
    tol, floor, slower = th.RATE_TOL, th.MIN_RATE, th.SLOWER
    return [
        bootstrap_part("plain MLP: decay rate of the gradient correlation per layer", lambda p: p, [plain],
                       lambda v, lo, hi: verdict_above(lo, hi, floor), note=_laws(plain)),
        bootstrap_part(f"plain MLP: fitted rate / theory's ({fmt(plain_theory)}) - 1",
                       lambda p: p / plain_theory - 1.0, [plain],
                       lambda v, lo, hi: verdict_within(lo, hi, tol)),
        bootstrap_part(f"residual MLP: fitted rate / theory's ({fmt(residual_theory)}) - 1",
                       lambda r: r / residual_theory - 1.0, [residual],
                       lambda v, lo, hi: verdict_within(lo, hi, tol), note=_laws(residual)),
        bootstrap_part(f"residual rate / plain rate (theory {fmt(residual_theory / plain_theory)})",
                       lambda r, p: r / p, [residual, plain],
                       lambda v, lo, hi: verdict_below(lo, hi, slower)),
    ]

CLAIM = Claim(
    21, "Gradients shatter with depth, less in residual nets",
    "At initialization the correlation of input gradients at nearby inputs decays exponentially with depth in "
    "plain ReLU MLPs (mean field: the product of 1 - theta_l / pi over the layers, the angles following the "
    "arc-cosine kernel) and more slowly in residual MLPs (without batch norm still exponentially, at the rate "
    "the residual mean field gives).",
    (STUDY,),
    f"decay rate per layer of log(gradient correlation) at an input angle of {SEPARATION} x pi/128, plain MLP",
    f"Rates are fitted to log(mean over seeds) against depth, intervals {intervals.CONFIDENCE:.0%} percentile "
    f"bootstrap over seeds. Supported if the plain rate's interval lies above MIN_RATE = {MIN_RATE}, the plain "
    f"and the residual rate's relative deviations from their theory's lie within +-RATE_TOL = {RATE_TOL}, and "
    f"the residual/plain ratio of rates lies below SLOWER = {SLOWER}; contradicted if an interval lies wholly "
    f"on the wrong side. Exponential and power-law fits of both are reported.",
    compute, THRESHOLDS)

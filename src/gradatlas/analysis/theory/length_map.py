"""The length map iterated per example through a plain MLP's depth, and what it predicts.

``meanfield`` predicts the per-layer gradient factor at the fixed point q* of the length map.
A finite network need not be there: the map may have an unstable fixed point between two
attractors (GELU and SiLU at sigma_w^2 = 2.25: q -> 0 below it, q -> infinity above it), so that
examples of one batch flow apart, or approach q* slowly (a power law at criticality, tanh at
sigma_w^2 = 1). Here, as Poole et al. (2016) state the theory, the map is iterated from each
example's own first-layer variance

    q_0(x) = sigma_1^2 ||x||^2 / fan_in + sigma_b^2     (sigma_1^2 = fan_in * std_1^2)

through the network's depth, and the squared gradient norm of that example is propagated back
along its own trajectory: ``||dLoss/dz_l||^2 = ||dLoss/dz_{L-1}||^2 prod_{k=l}^{L-2} chi(q_k)``
with ``chi(q) = sigma_w^2 E[phi'(sqrt(q) z)^2]`` (the step from z_{k+1} to z_k multiplies by
chi at the lower layer's variance). The top layer's gradient is ``phi'(z_{L-1}) * W_head^T e``
with ``e = softmax(logits) - onehot(y)``, whose norm depends on the example through the logits'
variance (``output_error_norm``).

The probes record the batch mean of the per-example gradient *norm* per layer and fit its
logarithm against the layer index (``fits.factor_fit``); ``predicted_profile`` predicts that
batch mean and ``per_example_factor`` fits it the same way.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import numpy as np

from gradatlas.analysis.theory.fits import log_linear_fit
from gradatlas.analysis.theory.gaussian import Q_MAX, ActivationLike, squared_expectation

# Draws of the standard normal logits behind ``output_error_norm`` (a fixed sample, so the
# prediction is a deterministic function; its Monte-Carlo error on the batch mean is ~1e-3
# relative and common to all layers, so it hardly moves a fitted factor).
ERROR_DRAWS = 4096
ERROR_SEED = 0


def _second_moments(activation: ActivationLike, slope: Optional[float], qs: np.ndarray,
                    derivative: bool) -> np.ndarray:
    return squared_expectation(activation, qs, derivative=derivative, slope=slope)


def length_trajectories(activation: ActivationLike, sigma_w2: float, q_first: np.ndarray, depth: int,
                        sigma_b2: float = 0.0, slope: Optional[float] = None) -> np.ndarray:
    """q_l of every example for the hidden layers l = 0..depth-1.

    Args:
        q_first: each example's variance of the first pre-activation z_0 (see the module).
        depth: the number of hidden layers.

    Returns:
        An array (examples, depth): column 0 is ``q_first``, column l + 1 is
        ``sigma_w^2 E[phi(sqrt(q_l) z)^2] + sigma_b^2``. Values are kept in [0, Q_MAX].
    """
    q = np.asarray(q_first, dtype=np.float64).ravel()
    out = np.empty((len(q), depth))
    for layer in range(depth):
        out[:, layer] = q
        q = np.minimum(sigma_w2 * _second_moments(activation, slope, q, False) + sigma_b2, Q_MAX)
    return out


def gradient_steps(activation: ActivationLike, sigma_w2: float, trajectories: np.ndarray,
                   slope: Optional[float] = None) -> np.ndarray:
    """chi(q_l) = sigma_w^2 E[phi'(sqrt(q_l) z)^2] along each trajectory (same shape)."""
    return sigma_w2 * _second_moments(activation, slope, trajectories, True)


# ``output_error_norm`` is tabulated over this range of logit variances (beyond it the softmax
# is uniform resp. one-hot to within the Monte-Carlo error), this many points per decade.
ERROR_Q_RANGE = (1e-6, 1e6)
ERROR_POINTS_PER_DECADE = 16


def _error_norm_direct(q: float, z: np.ndarray) -> float:
    u = math.sqrt(q) * z
    p = np.exp(u - u.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[:, 0] -= 1.0
    return float(np.mean(np.sqrt(np.sum(p * p, axis=1))))


@lru_cache(maxsize=4)
def _error_table(classes: int):
    from scipy.interpolate import CubicSpline

    z = np.random.default_rng(ERROR_SEED).standard_normal((ERROR_DRAWS, classes))
    low, high = ERROR_Q_RANGE
    grid = np.geomspace(low, high, int(round(math.log10(high / low) * ERROR_POINTS_PER_DECADE)) + 1)
    return CubicSpline(np.log(grid), [_error_norm_direct(q, z) for q in grid])


def output_error_norm(q_logits: np.ndarray, classes: int) -> np.ndarray:
    """E||softmax(u) - onehot(y)|| for logits u with iid N(0, q) entries and a label y independent
    of them (at initialization), per q: Monte Carlo over ``ERROR_DRAWS`` fixed draws (by symmetry
    y = class 0), tabulated on a log grid of q (``ERROR_Q_RANGE``, clipped there) and
    interpolated by a cubic spline."""
    low, high = ERROR_Q_RANGE
    q = np.clip(np.asarray(q_logits, dtype=np.float64), low, high)
    return np.asarray(_error_table(classes)(np.log(q)), dtype=np.float64)


def predicted_profile(activation: ActivationLike, sigma_w2: float, q_first: np.ndarray, depth: int,
                      sigma_b2: float = 0.0, slope: Optional[float] = None, *,
                      head_sigma_w2: Optional[float] = None, classes: int = 10) -> np.ndarray:
    """The batch mean of the per-example gradient norm ||dLoss/dz_l|| for l = 0..depth-1, up to
    one constant factor (what ``backprop_norm`` records, up to the scale a log-linear fit ignores).

    Each example's norm is ``E||e|| * sqrt(prod_{k=l}^{depth-2} chi(q_k) * E[phi'^2](q_{depth-1}))``,
    ``e`` the error at the logits, whose variance is ``head_sigma_w2 E[phi^2](q_{depth-1}) +
    sigma_b2`` (``head_sigma_w2`` defaults to ``sigma_w2``).
    """
    head = sigma_w2 if head_sigma_w2 is None else head_sigma_w2
    qs = length_trajectories(activation, sigma_w2, q_first, depth, sigma_b2, slope)
    chis = gradient_steps(activation, sigma_w2, qs, slope)
    top = qs[:, -1]
    error = output_error_norm(head * _second_moments(activation, slope, top, False) + sigma_b2, classes)
    # log of the squared norm at layer l: log E[phi'^2](q_top) + sum of log chi over layers l..L-2.
    with np.errstate(divide="ignore"):
        logs = np.log(chis[:, :-1])
        log_top = np.log(_second_moments(activation, slope, top, True))
    below = np.concatenate([np.cumsum(logs[:, ::-1], axis=1)[:, ::-1], np.zeros((len(top), 1))], axis=1)
    norms = error[:, None] * np.exp(0.5 * (below + log_top[:, None]))
    return norms.mean(axis=0)


def per_example_factor(activation: ActivationLike, sigma_w2: float, q_first: np.ndarray, depth: int,
                       sigma_b2: float = 0.0, slope: Optional[float] = None, *,
                       layers: Optional[np.ndarray] = None, head_sigma_w2: Optional[float] = None,
                       classes: int = 10) -> dict[str, float]:
    """The per-layer factor the fit of the measured profile should find: ``predicted_profile``
    fitted like the measurement (log-linear over ``layers``, default all hidden layers;
    pass the layers the measured fit used, e.g. without underflowed ones).

    Returns ``factor``, ``slope``, ``r2`` and ``n`` of that fit (as ``fits.factor_fit``).
    """
    profile = predicted_profile(activation, sigma_w2, q_first, depth, sigma_b2, slope,
                                head_sigma_w2=head_sigma_w2, classes=classes)
    index = np.arange(depth) if layers is None else np.asarray(layers, dtype=np.int64)
    index = index[(index >= 0) & (index < depth)]
    return log_linear_fit(index.astype(np.float64), profile[index])


def unstable_fixed_points(activation: ActivationLike, sigma_w2: float, sigma_b2: float = 0.0,
                          slope: Optional[float] = None, q_low: float = 1e-3, q_high: float = 1e3,
                          points: int = 400) -> np.ndarray:
    """Unstable fixed points of the length map in [q_low, q_high]: where ``map(q) - q`` crosses
    zero upward (the map's slope exceeds 1 there), located on a log grid and refined linearly.
    Examples on either side of one flow to different attractors."""
    grid = np.geomspace(q_low, q_high, points)
    gap = sigma_w2 * _second_moments(activation, slope, grid, False) + sigma_b2 - grid
    # Rounding must not make crossings where the map is the identity (ReLU at sigma_w^2 = 2).
    sign = np.where(np.abs(gap) <= 1e-9 * grid, 0.0, np.sign(gap))
    up = np.flatnonzero((sign[:-1] < 0) & (sign[1:] > 0))
    # Linear interpolation of the crossing in log q.
    lo, hi = np.log(grid[up]), np.log(grid[up + 1])
    return np.exp(lo + (hi - lo) * (-gap[up]) / (gap[up + 1] - gap[up]))


# --------------------------------------------------------------------------- why the fixed point fails

AT_FIXED_POINT = "at fixed point"
TWO_REGIMES = "two regimes"
SLOW_CRITICAL = "slow critical approach"
NOT_REACHED = "fixed point not reached"
REGIMES = (AT_FIXED_POINT, TWO_REGIMES, SLOW_CRITICAL, NOT_REACHED)
# The fixed-point prediction "holds" where it is this close (relative) to the per-example one.
REACHED_TOLERANCE = 0.01
# A fixed point is critical where |chi_1 - 1| is below this.
CRITICAL_BAND = 0.05
# At width N one layer's sample variance of an example's pre-activations deviates from q by
# ~sqrt(2 / N) (relative): examples this many such deviations from an unstable fixed point
# may cross it.
FLUCTUATION_Z = 3.0


def classify(q_first: np.ndarray, unstable: np.ndarray, chi_at_fixed_point: float,
             fixed_point_factor: float, per_example: float, width: float = math.inf) -> str:
    """Why the fixed-point predictor does (not) describe a run, by a stated rule (first match):

    1. ``two regimes``: an unstable fixed point of the length map lies between the smallest
       and the largest of the examples' q_0, widened by the factor 1 + b on either side with
       b = FLUCTUATION_Z sqrt(2 / width) (the batch's examples flow apart, or cross by the
       finite-width fluctuation of q);
    2. ``at fixed point``: sqrt(chi_1(q*)) is within ``REACHED_TOLERANCE`` (relative) of the
       per-example prediction;
    3. ``slow critical approach``: |chi_1(q*) - 1| < ``CRITICAL_BAND`` (a power-law approach);
    4. ``fixed point not reached``: otherwise (the depth is too short for the approach).
    """
    q = np.asarray(q_first, dtype=np.float64)
    band = 1.0 + FLUCTUATION_Z * math.sqrt(2.0 / width)
    if len(q) and np.any((unstable > q.min() / band) & (unstable < q.max() * band)):
        return TWO_REGIMES
    if abs(fixed_point_factor - per_example) <= REACHED_TOLERANCE * per_example:
        return AT_FIXED_POINT
    if abs(chi_at_fixed_point - 1.0) < CRITICAL_BAND:
        return SLOW_CRITICAL
    return NOT_REACHED

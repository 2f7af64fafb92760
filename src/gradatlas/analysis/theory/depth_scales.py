"""Depth scales of a wide fully connected network at its fixed point (Poole et al. 2016;
Schoenholz et al. 2017).

Two inputs whose pre-activations have variance q* and correlation c follow the *correlation map*

    c_{l+1} = (sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q*,
    u1 = sqrt(q*) z1,  u2 = sqrt(q*) (c z1 + sqrt(1 - c^2) z2),

whose stable fixed point c* is 1 in the ordered phase (chi_1 <= 1) and below 1 in the chaotic
phase. Near c* the deviation decays as exp(-l / xi_c) with

    1 / xi_c = -ln chi_c,   chi_c = sigma_w^2 E[phi'(u1) phi'(u2)]  at c*,

so xi_c diverges on the critical line chi_1 = 1 (at c* = 1, chi_c = chi_1). The squared gradient
norm changes by chi_1 per layer: it grows or shrinks by e over xi_grad = 1 / |ln chi_1| layers.
Schoenholz et al. report that networks train up to a depth of about 6 xi_c.

The bivariate Gaussian averages are computed in polar coordinates of (z1, z2), with panel
breakpoints at the angles where u1 or u2 changes sign (the kinks of ReLU-like units) and at the
activation's scale in the radius, so that kinked and smooth activations alike reach close to
machine precision (the tests compare with the arc-cosine kernel of ReLU and a Monte-Carlo
estimate).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Optional

import numpy as np
import pandas as pd
from scipy.optimize import brentq

from gradatlas.analysis.theory.gaussian import (
    Q_MAX, Q_MIN, ActivationLike, activation_functions, gaussian_expectation, gaussian_expectations)
from gradatlas.analysis.theory.meanfield import chi1, fixed_point

# Radius past which the 2-d standard normal's mass, exp(-R^2 / 2) ~ 3e-18, is below float64 resolution.
_R_MAX = 9.0
_POINTS = 10
# The correlation map's stable fixed point is sought in [C_LOW, 1 - C_GAPS[k]] (below 1: c = 1 is
# a fixed point too, unstable in the chaotic phase).
C_LOW = -1.0
C_GAPS = (1e-9, 1e-7, 1e-5, 1e-3)
DEPTH_SCALE_COLUMNS = ("sigma_w2", "sigma_b2", "q_star", "chi1", "c_star", "chi_c", "xi_c", "xi_grad")


@lru_cache(maxsize=4)
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def _panels(edges: np.ndarray, points: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = _legendre(points)
    left, right = edges[:-1, None], edges[1:, None]
    return (0.5 * (right - left) * x + 0.5 * (right + left)).ravel(), (0.5 * (right - left) * w).ravel()


@lru_cache(maxsize=512)
def _polar_rule(q: float, c: float, points: int = _POINTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes (u1, u2) and weights of E[F(u1, u2)] for the correlated pair at variance q."""
    s = math.sqrt(max(1.0 - c * c, 0.0))
    # u1 = 0 at theta = +-pi/2; u2 = 0 where c cos(theta) + s sin(theta) = 0.
    kink = math.atan2(-c, s)
    angles = {0.0, 2 * math.pi, math.pi / 2, 3 * math.pi / 2, kink % (2 * math.pi), (kink + math.pi) % (2 * math.pi)}
    angles.update(k * math.pi / 4 for k in range(8))
    theta, w_theta = _panels(np.array(sorted(angles)), points)
    scale = math.sqrt(q)
    radii = {float(k) for k in range(0, int(_R_MAX) + 1)}
    radii.update(2.0 ** k / scale for k in range(-6, 8) if 2.0 ** k / scale < _R_MAX)
    r, w_r = _panels(np.array(sorted(radii)), points)
    w_r = w_r * r * np.exp(-0.5 * r * r)
    z1 = np.outer(r, np.cos(theta))
    z2 = np.outer(r, np.sin(theta))
    weights = np.outer(w_r, w_theta) / (2.0 * math.pi)
    u1 = scale * z1
    u2 = scale * (c * z1 + s * z2)
    return u1.ravel(), u2.ravel(), weights.ravel()


def pair_expectation(f: Callable[[np.ndarray], np.ndarray], g: Callable[[np.ndarray], np.ndarray],
                     q: float, c: float) -> float:
    """E[f(u1) g(u2)] for a centred Gaussian pair of variance q and correlation c (|c| <= 1)."""
    if not (q >= 0 and math.isfinite(q)) or not -1.0 <= c <= 1.0:
        raise ValueError(f"need finite q >= 0 and |c| <= 1, got q={q}, c={c}")
    q = min(max(q, Q_MIN), Q_MAX)
    u1, u2, w = _polar_rule(float(q), float(c))
    return float(np.dot(w, np.asarray(f(u1), dtype=np.float64) * np.asarray(g(u2), dtype=np.float64)))


def correlation_map(activation: ActivationLike, sigma_w2: float, sigma_b2: float, c: float, q: float,
                    slope: Optional[float] = None) -> float:
    """The next layer's correlation of two inputs at variance ``q`` (the fixed point q*) and correlation c."""
    phi, _ = activation_functions(activation, slope)
    return (sigma_w2 * pair_expectation(phi, phi, q, c) + sigma_b2) / q


def chi_c(activation: ActivationLike, sigma_w2: float, c: float, q: float, slope: Optional[float] = None) -> float:
    """chi_c = sigma_w^2 E[phi'(u1) phi'(u2)]: the slope of the correlation map at c (variance q)."""
    _, dphi = activation_functions(activation, slope)
    return sigma_w2 * pair_expectation(dphi, dphi, q, c)


def correlation_fixed_point(activation: ActivationLike, sigma_w2: float, sigma_b2: float, q: float,
                            slope: Optional[float] = None) -> float:
    """The stable fixed point c* of the correlation map at variance ``q`` (= q*).

    1 in the ordered phase (chi_1 <= 1, where c = 1 attracts); otherwise the root of map(c) - c
    below 1 (Brent's method on [C_LOW, hi]: map(c) - c < 0 between c* and 1 where chi_1 > 1).
    The map's own error at c = 1 (q* is a root to finite precision: map(1) - 1 ~ 1e-12) is taken
    off the gap, and ``hi`` is the first of ``C_GAPS`` below 1 where the gap is negative: just
    above the critical line c* is so close to 1 that the gap at 1 - C_GAPS[0] is below the
    quadrature's resolution. Where no gap is negative, c* is 1 to within ``C_GAPS[-1]``.
    NaN without a finite positive q.
    """
    if not (math.isfinite(q) and q > 0):
        return math.nan
    if chi1(activation, sigma_w2, sigma_b2, slope, q) <= 1.0:
        return 1.0
    offset = correlation_map(activation, sigma_w2, sigma_b2, 1.0, q, slope) - 1.0

    def gap(c: float) -> float:
        return correlation_map(activation, sigma_w2, sigma_b2, c, q, slope) - c - offset

    lo = C_LOW
    if gap(lo) <= 0:
        return lo
    hi = next((1.0 - g for g in C_GAPS if gap(1.0 - g) < 0), None)
    if hi is None:
        return 1.0
    return float(brentq(gap, lo, hi, xtol=1e-12))


def _scale(chi: float) -> float:
    """1 / |ln chi|: infinite at chi = 1, NaN for a non-positive or non-finite chi."""
    if not (math.isfinite(chi) and chi > 0):
        return math.nan
    log = abs(math.log(chi))
    return math.inf if log == 0 else 1.0 / log


def depth_scales(activation: ActivationLike, sigma_w2: float, sigma_b2: float,
                 slope: Optional[float] = None) -> dict[str, float]:
    """q*, chi_1, c*, chi_c, xi_c = -1/ln chi_c and xi_grad = 1/|ln chi_1| at (sigma_w^2, sigma_b^2).

    Without a finite positive q* (ReLU-like units at sigma_w^2 > 2, or q* = 0 with sigma_b^2 = 0
    in the ordered phase of tanh) c*, chi_c and xi_c are NaN: there is no fixed point to expand
    around; iterate the length map instead (``theory.iterated``).
    """
    q_star = fixed_point(activation, sigma_w2, sigma_b2, slope)
    chi = chi1(activation, sigma_w2, sigma_b2, slope, q_star)
    row = {"sigma_w2": float(sigma_w2), "sigma_b2": float(sigma_b2), "q_star": q_star, "chi1": chi,
           "c_star": math.nan, "chi_c": math.nan, "xi_c": math.nan, "xi_grad": _scale(chi)}
    if math.isfinite(q_star) and q_star > Q_MIN:
        c_star = correlation_fixed_point(activation, sigma_w2, sigma_b2, q_star, slope)
        slope_c = chi if c_star == 1.0 else chi_c(activation, sigma_w2, c_star, q_star, slope)
        # c* = 1 with chi_1 > 1: just above the critical line, c* unresolved from 1 (xi_c ~ 1 / |ln chi_1|).
        row.update(c_star=c_star, chi_c=slope_c, xi_c=_scale(slope_c) if slope_c <= 1.0 or c_star == 1.0 else math.nan)
    return row


def depth_scale_grid(activation: ActivationLike, sigma_w2s, sigma_b2s, slope: Optional[float] = None) -> pd.DataFrame:
    """``depth_scales`` over the grid sigma_w2s x sigma_b2s, one row each (``DEPTH_SCALE_COLUMNS``)."""
    rows = [depth_scales(activation, float(w), float(b), slope) for b in sigma_b2s for w in sigma_w2s]
    return pd.DataFrame(rows, columns=list(DEPTH_SCALE_COLUMNS))


def critical_line(activation: ActivationLike, qs, slope: Optional[float] = None) -> pd.DataFrame:
    """The critical line chi_1 = 1 of the (sigma_w^2, sigma_b^2) plane, parametrized by its q*.

    At a fixed point q on the line, sigma_w^2 = 1 / E[phi'(sqrt(q) z)^2] (chi_1 = 1) and the
    length map's fixed-point condition gives sigma_b^2 = q - sigma_w^2 E[phi(sqrt(q) z)^2]: two
    Gaussian averages per point, no root finding. Rows with sigma_b^2 < 0 are dropped.

    Returns:
        Columns ``q_star``, ``sigma_w2``, ``sigma_b2``, in the order of ``qs``.
    """
    phi, dphi = activation_functions(activation, slope)
    qs = np.clip(np.asarray(qs, dtype=np.float64), Q_MIN, Q_MAX)
    derivative = gaussian_expectations(lambda x: dphi(x) ** 2, qs)
    second = gaussian_expectations(lambda x: phi(x) ** 2, qs)
    with np.errstate(divide="ignore"):
        sigma_w2 = 1.0 / derivative
    frame = pd.DataFrame({"q_star": qs, "sigma_w2": sigma_w2, "sigma_b2": qs - sigma_w2 * second})
    return frame[np.isfinite(frame["sigma_w2"]) & (frame["sigma_b2"] >= 0)].reset_index(drop=True)


def critical_sigma_w2(activation: ActivationLike, sigma_b2: float, slope: Optional[float] = None,
                      q_low: float = 1e-8, q_high: float = 1e4) -> float:
    """The sigma_w^2 on the critical line (``critical_line``) at ``sigma_b2``, NaN if the line
    does not reach it for q* in [q_low, q_high]: the first sign change of sigma_b^2(q) - sigma_b2
    on a logarithmic grid of q*, refined by Brent's method in log q*."""
    phi, dphi = activation_functions(activation, slope)

    def line(log_q: float) -> tuple[float, float]:
        q = math.exp(log_q)
        w = 1.0 / gaussian_expectation(lambda x: dphi(x) ** 2, q)
        return w, q - w * gaussian_expectation(lambda x: phi(x) ** 2, q) - sigma_b2

    grid = np.linspace(math.log(q_low), math.log(q_high), 64)
    gaps = [line(g)[1] for g in grid]
    for a, b, ga, gb in zip(grid[:-1], grid[1:], gaps[:-1], gaps[1:]):
        if ga == 0:
            return line(a)[0]
        if (ga < 0) != (gb < 0):
            return line(brentq(lambda g: line(g)[1], a, b, xtol=1e-13))[0]
    return math.nan

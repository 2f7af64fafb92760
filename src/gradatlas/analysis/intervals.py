"""Confidence intervals that fit the quantity, for one sample or for many resampled ones at once.

Every function here takes its observations along the last axis, so the same code gives the
ledger's interval (one sample, shape ``(n,)``) and the intervals of the stability draws
(``(draws, n)``, see ``gradatlas.analysis.claims``): the two can never disagree on method.

- ``seed_interval``: the seed is the replicate. n >= 4: mean with a two-sided Student-t
  interval (``scipy.stats.ttest_1samp``); 2 <= n <= 3: mean with the range (min, max) of the
  seeds, since a t interval on 2 or 3 values (t = 12.7 for n = 2) says more about the t table
  than about the data; n = 1: the value, interval undefined (NaN). A positive quantity (loss,
  MSE, norm, ratio) is summarised on the log scale (geometric mean, interval back-transformed),
  so its interval is never negative.
- ``wilson_interval``: a share k/n (``scipy.stats.binomtest(...).proportion_ci('wilson')``).
- ``newcombe_interval``: a difference of two shares (Newcombe's hybrid score interval).
- ``welch_interval``: a difference of two means with unequal variances
  (``scipy.stats.ttest_ind(equal_var=False)``).
- ``normal_replicates`` and ``binomial_replicates``: another draw of as many seeds (or runs)
  as a sample has, for the stability of a verdict (``gradatlas.analysis.claims``).
- ``median_interval``: a median with its distribution-free order-statistic interval
  (``scipy.stats.quantile_test``): coverage at least 95% whatever the distribution, no
  resampling noise, and cheap enough to
  recompute on every stability draw (a percentile bootstrap inside each of 1000 draws of
  hundreds of runs is not).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
# Up to this many seeds an interval is the seeds' range (min, max), not a t interval.
SMALL_N = 3

# Names of the interval methods, as the ledger shows them.
T = "t"
LOG_T = "log-t"
RANGE = "range"
SINGLE = "one seed"
WILSON = "Wilson"
NEWCOMBE = "Newcombe"
WELCH = "Welch"
MEDIAN = "order statistics"
EXACT = "exact"


@dataclass(frozen=True)
class Interval:
    """A summary value with its interval: value [low, high], n observations, the method."""

    value: float
    low: float
    high: float
    n: int
    method: str


def seed_method(n: int, log: bool) -> str:
    """The interval method ``seed_interval`` uses for n observations."""
    if n <= 1:
        return SINGLE
    if n <= SMALL_N:
        return RANGE
    return LOG_T if log else T


def seed_summary(x: np.ndarray, log: bool = False, confidence: float = CONFIDENCE
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, low, high) over the last axis of ``x`` (finite values; positive when ``log``).

    Vectorised over the leading axes; the method follows ``seed_method`` for n = x.shape[-1].
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    if n == 0:
        nan = np.full(x.shape[:-1], np.nan)
        return nan, nan.copy(), nan.copy()
    y = np.log(x) if log else x
    back = np.exp if log else (lambda v: v)
    centre = y.mean(axis=-1)
    if n == 1:
        nan = np.full(centre.shape, np.nan)
        return back(centre), nan, nan.copy()
    if n <= SMALL_N:
        return back(centre), x.min(axis=-1), x.max(axis=-1)
    if np.ndim(confidence):
        return _t_interval_levels(y, np.asarray(confidence, dtype=np.float64), back)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = stats.ttest_1samp(y, 0.0, axis=-1).confidence_interval(confidence)
    low, high = np.asarray(ci.low, dtype=np.float64), np.asarray(ci.high, dtype=np.float64)
    # Identical values: scipy's interval is NaN (0/0 in t); the interval is the point itself.
    same = np.ptp(y, axis=-1) == 0
    low, high = np.where(same, centre, low), np.where(same, centre, high)
    return back(centre), back(low), back(high)


def _t_interval_levels(y: np.ndarray, confidence: np.ndarray, back) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Student-t interval of one sample ``y`` (shape (n,)) at many confidences at once.

    Written out (mean +- t quantile x standard error, the interval ``ttest_1samp`` gives)
    because the family adjustment inverts each sub-claim's interval over a grid of
    confidences: one scipy call per level cost 5 ms, 95 % of the sensitivity analysis.
    """
    n = y.shape[-1]
    centre = y.mean(axis=-1)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * y.std(axis=-1, ddof=1) / np.sqrt(n)
    value = np.broadcast_to(back(centre), confidence.shape)
    return value, back(centre - half), back(centre + half)


def seed_interval(values, log: bool = False, confidence: float = CONFIDENCE) -> Interval:
    """The interval of one sample of per-seed values (non-finite values dropped; with ``log``,
    non-positive values too)."""
    x = np.asarray(list(values), dtype=np.float64)
    x = x[np.isfinite(x)]
    if log:
        x = x[x > 0]
    return _seed_interval(tuple(x.tolist()), log, confidence)


@lru_cache(maxsize=65536)  # the sensitivity sweep asks for the same samples ~100 times; scipy's t costs 1.3 ms
def _seed_interval(x: tuple[float, ...], log: bool, confidence: float) -> Interval:
    value, low, high = seed_summary(np.asarray(x, dtype=np.float64), log, confidence)
    return Interval(float(value), float(low), float(high), len(x), seed_method(len(x), log))


@lru_cache(maxsize=4096)
def _wilson(k: int, n: int, confidence: float) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def wilson_interval(k, n: int, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Share k/n with its Wilson score interval, vectorised over ``k``: (share, low, high);
    NaNs for n = 0."""
    k = np.asarray(k, dtype=np.int64)
    if n == 0:
        nan = np.full(k.shape, np.nan)
        return nan, nan.copy(), nan.copy()
    unique, inverse = np.unique(k, return_inverse=True)
    bounds = np.array([_wilson(int(u), int(n), confidence) for u in unique]).reshape(-1, 2)
    low, high = bounds[inverse, 0].reshape(k.shape), bounds[inverse, 1].reshape(k.shape)
    return k / n, low, high


def newcombe_interval(k1, n1: int, k2, n2: int, confidence: float = CONFIDENCE
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Difference of shares k1/n1 - k2/n2 with Newcombe's hybrid score interval (method 10 of
    Newcombe 1998), vectorised over k1 and k2.

    Hand-written: scipy.stats has the Wilson interval of one share but no interval for a
    difference of two independent shares that stays defined at 0 of n.
    """
    k1, k2 = np.asarray(k1), np.asarray(k2)
    if n1 == 0 or n2 == 0:
        nan = np.full(np.broadcast(k1, k2).shape, np.nan)
        return nan, nan.copy(), nan.copy()
    p1, l1, u1 = wilson_interval(k1, n1, confidence)
    p2, l2, u2 = wilson_interval(k2, n2, confidence)
    d = p1 - p2
    return d, d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def welch_interval(x, y, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mean(x) - mean(y) with Welch's t interval over the last axis (NaN with < 2 values in either)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    d = x.mean(axis=-1) - y.mean(axis=-1)
    if x.shape[-1] < 2 or y.shape[-1] < 2:
        nan = np.full(np.shape(d), np.nan)
        return d, nan, nan.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = stats.ttest_ind(x, y, equal_var=False, axis=-1).confidence_interval(confidence)
    return d, np.asarray(ci.low, dtype=np.float64), np.asarray(ci.high, dtype=np.float64)


@lru_cache(maxsize=256)
def _median_ranks(n: int, confidence: float) -> tuple[float, float]:
    # The interval's order statistics depend on n only: ask scipy with the ranks themselves.
    ci = stats.quantile_test(np.arange(n, dtype=np.float64), p=0.5).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def median_interval(x, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median over the last axis with its distribution-free interval (order statistics chosen
    by the binomial distribution, ``scipy.stats.quantile_test``), vectorised over the leading
    axes. Coverage at least 95% for any continuous distribution, no resampling noise; NaN
    bounds for n < 6, where no pair of order statistics reaches 95%."""
    x = np.sort(np.asarray(x, dtype=np.float64), axis=-1)
    n = x.shape[-1]
    if n == 0:
        nan = np.full(x.shape[:-1], np.nan)
        return nan, nan.copy(), nan.copy()
    point = np.median(x, axis=-1)
    low, high = _median_ranks(n, confidence)
    if not (np.isfinite(low) and np.isfinite(high)):
        nan = np.full(point.shape, np.nan)
        return point, nan, nan.copy()
    return point, x[..., int(low)], x[..., int(high)]


def finite(values) -> np.ndarray:
    """The finite values as a float64 array."""
    x = np.asarray(list(values), dtype=np.float64)
    return x[np.isfinite(x)]


# Replicates for the stability of a verdict: what another draw of as many seeds could give.
# Not the plain seed bootstrap (resampling the observed seeds): with 4-6 seeds it treats the
# sample's spread as known (and shrinks it by (n-1)/n), and so called verdicts stable that
# another instruction set, which acts on chaotic training like a new draw of seeds, changed
# (bench/README.md, "ledger_diff.py"). The replicates below carry the uncertainty of the mean
# and of the spread (or of the share) into the draw.


def normal_replicates(x, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` replicate samples of ``len(x)`` values, shape ``(count, n)``: the posterior
    predictive of a normal model of ``x`` under the Jeffreys prior (sigma^2 = (n - 1) s^2 /
    chi^2_{n-1}, mu ~ N(mean, sigma^2 / n), each value ~ N(mu, sigma^2)). With fewer than two
    values (no spread to draw from) every replicate is ``x`` itself."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 2:
        return np.broadcast_to(x, (count, n)).copy()
    sigma = np.sqrt((n - 1) * x.var(ddof=1) / rng.chisquare(n - 1, size=count))
    mu = x.mean() + sigma / np.sqrt(n) * rng.standard_normal(count)
    return mu[:, None] + sigma[:, None] * rng.standard_normal((count, n))


def binomial_replicates(k: int, n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` replicate counts out of ``n`` runs: the beta-binomial posterior predictive of
    k of n under the Jeffreys prior (p ~ Beta(k + 1/2, n - k + 1/2), then Binomial(n, p)), so
    that 0 of 10 does not replicate as 0 of 10 every time."""
    return rng.binomial(n, rng.beta(k + 0.5, n - k + 0.5, size=count))

"""The ledger's error rate: every decisive sub-claim is a one-sided test, Holm-adjusted over the family.

Each sub-claim's rule decides from its interval: *supported* when the interval lies on the
claim's side of a threshold, *contradicted* when it lies on the other side. At a two-sided
confidence 1 - e this is a one-sided test at level e / 2, so the p-value of the verdict the
95 % interval gives is e* / 2, with e* the smallest two-sided error rate at which the rule
still gives that verdict (found by bisection on log e, ``p_value``; the rule is monotone in
e because intervals widen as the confidence grows).

The family is every decisive sub-claim of the ledger that has data (``m`` of them; the theory
claims included; the replica ledger on another data set is a family of its own). Holm's
step-down procedure (``holm``) controls the family-wise error rate at ``FAMILY_ALPHA``
(two-sided; ``FAMILY_ALPHA / 2`` per side): sorting the p-values, the k-th smallest is
compared with ``(FAMILY_ALPHA / 2) / (m - k + 1)``, and testing stops at the first that
fails. A sub-claim whose 95 % verdict does not survive reads ``inconclusive`` with its
unadjusted verdict beside it. Its *adjusted interval* is the interval at the confidence
``1 - FAMILY_ALPHA / (m - k + 1)`` it was tested at (Holm's step for its rank k), so that the
interval shown is the one the adjusted verdict reads; the 95 % interval is reported beside.

Hand-written: Holm's procedure is four lines (``holm``, tested against a worked example);
statsmodels' ``multipletests`` would add a dependency for it.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from gradatlas.analysis import intervals
from gradatlas.analysis.claims.parts import Part
from gradatlas.analysis.claims.verdicts import CONTRADICTED, INCONCLUSIVE, NO_DATA, SUPPORTED, rule_of

FAMILY_ALPHA = 1.0 - intervals.CONFIDENCE
# The smallest two-sided error rate the p-value search tries: a verdict that survives it gets
# p = SMALLEST_ERROR / 2 ("at most"), which no family of this size comes near.
SMALLEST_ERROR = 1e-12
# The p-value search: two passes over a geometric grid of GRID_POINTS error rates; the second
# pass spans one step of the first (10.4 decades / 31 steps), so the p-value is resolved to
# about 10^(0.34 / 31) - 1 = 2.5 % of itself.
GRID_POINTS = 32
REFINEMENTS = 2
DECIDED = (SUPPORTED, CONTRADICTED)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN counts in the family as p = 1).

    adjusted p_(k) = max over j <= k of min(1, (m - j + 1) p_(j)), in ascending order of p.
    """
    p = np.nan_to_num(np.asarray(p_values, dtype=np.float64), nan=1.0)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(stepped)
    return adjusted


def holm_ranks(p_values: Sequence[float]) -> np.ndarray:
    """The 1-based rank of each p-value in Holm's order (ties in the given order)."""
    p = np.nan_to_num(np.asarray(p_values, dtype=np.float64), nan=1.0)
    ranks = np.empty(len(p), dtype=int)
    ranks[np.argsort(p, kind="stable")] = np.arange(1, len(p) + 1)
    return ranks


def _verdicts_at(part: Part, errors: np.ndarray) -> np.ndarray:
    """The sub-claim's verdict at each two-sided error rate (its interval at 1 - error)."""
    value, low, high = part.at(1.0 - errors)
    return np.asarray(part.judge(np.asarray(value, dtype=np.float64), np.asarray(low, dtype=np.float64),
                                 np.asarray(high, dtype=np.float64)), dtype=object).reshape(errors.shape)


def p_value(part: Part) -> float:
    """The one-sided p-value of a sub-claim's 95 % verdict (NaN when it decides nothing).

    Found on a geometric grid of error rates from ``SMALLEST_ERROR`` to ``FAMILY_ALPHA``
    (``GRID_POINTS``), refined once on the same grid inside the bracketing step, and rounded up
    to the grid (conservative, at most ``1 + RESOLUTION`` times the exact value). Exact statements (no sampling interval, e.g.
    "every probed value is 0") get 0: their verdict does not depend on the seeds drawn.
    """
    verdict = part.unadjusted or part.verdict
    if verdict not in DECIDED:
        return math.nan
    if part.at is None or part.judge is None:
        return 0.0 if part.interval == intervals.EXACT else math.nan
    rule = rule_of(part.judge)
    if not (part.evidence and rule):
        return _inverted(part, verdict)
    # Memoized on what the p-value is a function of: the sensitivity analysis re-evaluates each
    # claim ~100 times, most of its sub-claims unchanged (each inversion: 64 interval levels).
    key = (part.evidence, rule, verdict)
    if key not in _P_VALUES:
        if len(_P_VALUES) >= _P_VALUES_MAX:
            _P_VALUES.clear()
        _P_VALUES[key] = _inverted(part, verdict)
    return _P_VALUES[key]


_P_VALUES: dict[tuple, float] = {}
_P_VALUES_MAX = 100_000


def _inverted(part: Part, verdict: str) -> float:
    lo, hi = SMALLEST_ERROR, FAMILY_ALPHA
    for _ in range(REFINEMENTS):
        errors = np.geomspace(lo, hi, GRID_POINTS)
        holds = _verdicts_at(part, errors) == verdict
        if holds[0]:
            return lo / 2 if lo == SMALLEST_ERROR else float(errors[0]) / 2
        if not holds[-1]:  # the rule is not monotone here: no test to invert
            return math.nan
        first = int(np.argmax(holds))
        lo, hi = float(errors[first - 1]), float(errors[first])
    return hi / 2


def family(parts: Iterable[Part]) -> list[Part]:
    """The sub-claims that are tested: decisive, with data."""
    return [p for p in parts if p.decisive and (p.unadjusted or p.verdict) != NO_DATA]


def adjust(parts: Sequence[Part], others: Sequence[float] = ()) -> int:
    """Holm-adjust the decisive sub-claims of ``parts`` in place; returns the family size m.

    ``others``: the p-values of the rest of the family (other claims' sub-claims), which count
    in m and in the ranking but are not changed (the sensitivity analysis moves one claim's
    thresholds with the rest of the ledger fixed).
    """
    members = family(parts)
    for part in members:
        if not part.unadjusted:
            part.unadjusted = part.verdict
        part.p_value = p_value(part)
    p_all = [p.p_value for p in members] + list(others)
    m = len(p_all)
    if m == 0:
        return 0
    adjusted, ranks = holm(p_all), holm_ranks(p_all)
    for index, part in enumerate(members):
        part.p_adjusted = float(adjusted[index])
        part.confidence = 1.0 - FAMILY_ALPHA / (m - int(ranks[index]) + 1)
        if part.at is not None:
            _, low, high = part.at(part.confidence)
            part.adj_low, part.adj_high = float(low), float(high)
        survives = part.unadjusted in DECIDED and part.p_adjusted <= FAMILY_ALPHA / 2
        part.verdict = part.unadjusted if survives or part.unadjusted not in DECIDED else INCONCLUSIVE
    return m

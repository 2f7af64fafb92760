"""The verdicts a part or a claim can get, and the rules that give them.

A rule (a ``Judge``) maps a part's value and interval to a verdict, elementwise on arrays so
that the stability draws (``decision.stability``) run it on every draw at once.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
# A claim (never a sub-claim) some of whose decisive sub-claims are supported and some contradicted.
MIXED = "mixed"
INCONCLUSIVE = "inconclusive"
NO_DATA = "no data at this scale"
UNSTABLE = "inconclusive (unstable)"
VERDICTS = (SUPPORTED, CONTRADICTED, MIXED, INCONCLUSIVE, NO_DATA, UNSTABLE)

# A part's rule: (value, low, high) -> verdict, elementwise on arrays (the stability draws).
Judge = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _verdicts(out: np.ndarray):
    return str(out) if np.ndim(out) == 0 else np.asarray(out, dtype=object)


def verdict_above(low, high, support: float, contradict: Optional[float] = None):
    """The claim says 'the quantity is large': supported if low > support, contradicted if
    high < contradict (default: support); NaN bounds give inconclusive."""
    contradict = support if contradict is None else contradict
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    return _verdicts(np.where(low > support, SUPPORTED, np.where(high < contradict, CONTRADICTED, INCONCLUSIVE)))


def verdict_below(low, high, support: float, contradict: Optional[float] = None):
    """The claim says 'the quantity is small': supported if high < support, contradicted if
    low > contradict (default: support); NaN bounds give inconclusive."""
    contradict = support if contradict is None else contradict
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    return _verdicts(np.where(high < support, SUPPORTED, np.where(low > contradict, CONTRADICTED, INCONCLUSIVE)))


def verdict_within(low, high, tolerance: float):
    """Equivalence: supported if the interval lies inside (-tol, tol), contradicted if entirely outside."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    inside = (-tolerance < low) & (high < tolerance)
    outside = (low > tolerance) | (high < -tolerance)
    return _verdicts(np.where(inside, SUPPORTED, np.where(outside, CONTRADICTED, INCONCLUSIVE)))


def with_bounds(judge: Judge, *bounds: float, rule: tuple = ()) -> Judge:
    """``judge`` carrying the thresholds it compares with as ``judge.bounds`` (ascending), so
    that a table or the forest plot can draw them beside the interval, and ``judge.rule``: its
    kind and arguments, which name the rule for the family adjustment's memo (empty: unnamed)."""
    judge.bounds = tuple(sorted(float(b) for b in set(bounds)))  # type: ignore[attr-defined]
    judge.rule = rule  # type: ignore[attr-defined]
    return judge


def rule_of(judge: Optional[Judge]) -> tuple:
    """The kind and arguments of a rule made here (empty for another callable)."""
    return tuple(getattr(judge, "rule", ()))


def bounds_of(judge: Optional[Judge]) -> tuple[float, ...]:
    """The thresholds a rule compares with (empty where it states none)."""
    return tuple(getattr(judge, "bounds", ()))


def above(support: float, contradict: Optional[float] = None) -> Judge:
    """The rule 'supported if the interval lies above ``support``' (see ``verdict_above``)."""
    return with_bounds(lambda value, low, high: verdict_above(low, high, support, contradict),
                       support, support if contradict is None else contradict, rule=("above", support, contradict))


def below(support: float, contradict: Optional[float] = None) -> Judge:
    """The rule 'supported if the interval lies below ``support``' (see ``verdict_below``)."""
    return with_bounds(lambda value, low, high: verdict_below(low, high, support, contradict),
                       support, support if contradict is None else contradict, rule=("below", support, contradict))


def within(tolerance: float) -> Judge:
    """The equivalence rule of ``verdict_within``."""
    return with_bounds(lambda value, low, high: verdict_within(low, high, tolerance), -tolerance, tolerance,
                       rule=("within", tolerance))


def reported(value, low, high):
    """The rule of an informational part: it never decides."""
    return _verdicts(np.full(np.shape(low), INCONCLUSIVE, dtype=object))



def between(small: float, big: float) -> Judge:
    """Supported if the interval lies between the two bounds, contradicted if the value does not."""
    def judge(value, low, high):
        value, low, high = (np.asarray(v, dtype=np.float64) for v in (value, low, high))
        inside = (low > small) & (high < big)
        outside = (value <= small) | (value >= big)
        return _verdicts(np.where(inside, SUPPORTED, np.where(outside, CONTRADICTED, INCONCLUSIVE)))
    return with_bounds(judge, small, big, rule=("between", small, big))


def censored_between(small: float, big: float, resolution: float) -> Judge:
    """``between`` for a positive quantity known only to within a factor ``resolution`` (a
    boundary read off a grid): supported if the interval lies inside [small x resolution,
    big / resolution], contradicted if the value lies outside [small / resolution, big x
    resolution], inconclusive otherwise."""
    def judge(value, low, high):
        value, low, high = (np.asarray(v, dtype=np.float64) for v in (value, low, high))
        inside = (low > small * resolution) & (high < big / resolution)
        outside = (value <= small / resolution) | (value >= big * resolution)
        return _verdicts(np.where(inside, SUPPORTED, np.where(outside, CONTRADICTED, INCONCLUSIVE)))
    return with_bounds(judge, small, big, rule=("censored_between", small, big, resolution))


def exactly_zero(peak):
    """Supported if the largest |value| is exactly 0, contradicted otherwise (elementwise)."""
    return _verdicts(np.where(np.asarray(peak) == 0.0, SUPPORTED, CONTRADICTED))

"""A claim's named thresholds: the numbers its rules compare measured quantities with.

A catalog module declares each threshold once, with what it means and the range over which
the sensitivity analysis (``claims.sensitivity``) moves it::

    FACTOR_BOUND = Threshold("FACTOR_BOUND", 1.0, "per-layer factor between shrinking and growing",
                             0.5, 2.0, log=True)
    THRESHOLDS = (FACTOR_BOUND,)

    def compute(t, th):                 # th.FACTOR_BOUND: the value in force
        ...above(th.FACTOR_BOUND)...

    CLAIM = Claim(..., compute, thresholds=THRESHOLDS)

The computation reads the values in force from ``th`` (a ``ThresholdValues``), never from the
module constants, so that the sensitivity analysis can move one threshold with the others
fixed. A ``Threshold`` formats as its value (rule texts are written from it) but is not a
number: comparing a measurement with the module constant itself raises ``TypeError``, so a
computation that bypasses ``th`` fails at once instead of silently ignoring a moved threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional


@dataclass(frozen=True)
class Threshold:
    """One named threshold of a claim.

    Attributes:
        name: the constant's name in its module (``th.<name>`` in the computation).
        value: the value the ledger uses.
        meaning: what the threshold separates, in words.
        low, high: the range the sensitivity analysis searches (``low <= value <= high``).
        log: search on a logarithmic grid (positive thresholds of positive quantities).
    """

    name: str
    value: float
    meaning: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"threshold name {self.name!r} is not an identifier")
        if not (self.low <= self.value <= self.high) or self.low == self.high:
            raise ValueError(f"threshold {self.name}: need low <= value <= high and low < high, got "
                             f"{self.low} <= {self.value} <= {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"threshold {self.name}: a logarithmic search range must be positive, got low={self.low}")

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __str__(self) -> str:
        return format(self.value, "g")

    def grid(self, points: int) -> list[float]:
        """``points`` values from ``low`` to ``high`` (geometric with ``log``), with ``value`` among them."""
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            values = [math.exp(lo + (hi - lo) * i / (points - 1)) for i in range(points)]
        else:
            values = [self.low + (self.high - self.low) * i / (points - 1) for i in range(points)]
        return sorted(set(values) | {self.value})


class ThresholdValues:
    """The threshold values in force for one evaluation: ``th.NAME`` is a float.

    Built from a claim's declared thresholds with optional overrides (the sensitivity analysis);
    an override of an undeclared name, or reading one, is an error naming the known ones.
    """

    def __init__(self, thresholds: Iterable[Threshold], overrides: Optional[Mapping[str, float]] = None) -> None:
        values = {t.name: float(t.value) for t in thresholds}
        for name, value in (overrides or {}).items():
            if name not in values:
                raise KeyError(f"unknown threshold {name!r}; known: {', '.join(sorted(values)) or 'none'}")
            values[name] = float(value)
        object.__setattr__(self, "_values", values)

    def __getattr__(self, name: str) -> float:
        values = object.__getattribute__(self, "_values")
        if name not in values:
            raise AttributeError(f"no threshold {name!r}; declared: {', '.join(sorted(values)) or 'none'}")
        return values[name]

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError("threshold values are read-only")

    def as_dict(self) -> dict[str, float]:
        """Name -> value."""
        return dict(object.__getattribute__(self, "_values"))

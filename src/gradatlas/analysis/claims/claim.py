"""A claim (what it says, the studies it reads, its rule and computation) and its result."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import pandas as pd

from gradatlas.analysis import intervals
from gradatlas.analysis.claims.decision import (STABILITY_DRAWS, counter_part, deciding_part, reported_verdict,
                                                stability)
from gradatlas.analysis.claims import multiplicity
from gradatlas.analysis.claims.parts import MIN_SEEDS, Part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import NO_DATA

CI_NOTE = (f"Intervals: {intervals.CONFIDENCE:.0%}, over seeds (Student-t for n >= {MIN_SEEDS}; the seeds' range "
           f"for n = 2-{MIN_SEEDS - 1} and none for one seed, both leaving the part inconclusive; positive "
           f"quantities on the log scale).")


def rule_text(text: str) -> str:
    """A rule's text followed by the statement of the intervals (``CI_NOTE``)."""
    return f"{text} {CI_NOTE}"


@dataclass(frozen=True)
class ClaimResult:
    """The evaluated claim: its deciding sub-claim (and, for ``mixed``, the supported one beside
    it), the summary verdict (reported and would-be), the stability and every sub-claim."""

    verdict: str
    would_be: str
    stability: float
    deciding: Optional[Part]
    detail: str
    parts: tuple[Part, ...] = ()
    counter: Optional[Part] = None

    @property
    def value(self) -> float:
        """The deciding part's value (NaN without one)."""
        return self.deciding.value if self.deciding else math.nan

    @property
    def ci_low(self) -> float:
        """The deciding part's lower bound."""
        return self.deciding.ci_low if self.deciding else math.nan

    @property
    def ci_high(self) -> float:
        """The deciding part's upper bound."""
        return self.deciding.ci_high if self.deciding else math.nan

    @property
    def n(self) -> int:
        """The deciding part's number of observations."""
        return self.deciding.n if self.deciding else 0


@dataclass(frozen=True)
class Claim:
    """One claim: what it says, the studies it reads, its parts in words, rule and computation."""

    id: int
    title: str
    statement: str
    studies: tuple[str, ...]
    metric: str
    rule: str
    compute: Optional[Callable[["Tables", ThresholdValues], list[Part]]] = field(default=None, repr=False,
                                                                                 compare=False)
    thresholds: tuple[Threshold, ...] = ()
    # The data sets the claim is replicated on (``replicas.REPLICA_DATA``): the same computation
    # on the studies ``<study>_<data>`` (``replicas``).
    replicas: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [t.name for t in self.thresholds]
        if len(set(names)) != len(names):
            raise ValueError(f"claim {self.id}: a threshold is declared twice: {names}")

    def threshold_values(self, overrides: Optional[dict[str, float]] = None) -> ThresholdValues:
        """The thresholds in force: the declared values with ``overrides`` (name -> value)."""
        return ThresholdValues(self.thresholds, overrides)

    def sub_claims(self, tables: "Tables", overrides: Optional[dict[str, float]] = None) -> Optional[list[Part]]:
        """The sub-claims at their unadjusted (95 %) verdicts, or None when none of the claim's
        studies is in the tables; ``overrides`` moves named thresholds (the sensitivity analysis)."""
        if not any(tables.has_study(s) for s in self.studies):
            return None
        if self.compute is None:
            raise ValueError(f"claim {self.id} has no compute function")
        return self.compute(tables, self.threshold_values(overrides))

    def result(self, parts: Optional[list[Part]], draws: int = STABILITY_DRAWS) -> ClaimResult:
        """The summary verdict, stability and deciding sub-claims of already adjusted sub-claims
        (``multiplicity.adjust``)."""
        if parts is None:
            return ClaimResult(NO_DATA, NO_DATA, math.nan, None,
                               f"studies not in the tables: {', '.join(self.studies)}")
        if not parts:
            return ClaimResult(NO_DATA, NO_DATA, math.nan, None, "no cells for this claim")
        for part in parts:
            part.unadjusted = part.unadjusted or part.verdict
        verdict, stable = stability(parts, self.id, draws)
        return ClaimResult(reported_verdict(verdict, stable), verdict, stable, deciding_part(parts, verdict),
                           "; ".join(p.describe() for p in parts), tuple(parts), counter_part(parts, verdict))

    def evaluate(self, runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame,
                 tables: Optional["Tables"] = None, draws: int = STABILITY_DRAWS,
                 overrides: Optional[dict[str, float]] = None) -> ClaimResult:
        """This claim alone: its sub-claims Holm-adjusted as a family of their own (the ledger,
        ``claims.ledger.evaluate``, adjusts over every claim's); ``tables`` shares caches between
        claims, ``overrides`` moves named thresholds."""
        tables = tables or Tables(runs, layers, timesteps)
        parts = self.sub_claims(tables, overrides)
        if parts:
            multiplicity.adjust(parts)
        return self.result(parts, draws)

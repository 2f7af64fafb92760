"""How far each named threshold can move before its claim's verdict changes, from the data alone.

For every threshold of every claim (``claims.thresholds``), the claim's sub-claims are
recomputed from the same summary tables with that threshold moved over ``GRID_POINTS`` values
of its declared search range (geometric for a logarithmic threshold) and the others at their
values; each time the sub-claims are Holm-adjusted with the rest of the ledger's family fixed
(``multiplicity.adjust`` with the other claims' p-values) and combined into the summary verdict
(``decision.combine``; no stability draws, which would only repeat the same question 1000
times). The *stable range* is the largest interval of grid values around the threshold's own
value over which that verdict is unchanged; an end that reaches the search range is open
(the verdict may hold further). No retraining: the same runs, another rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional

import pandas as pd

from gradatlas.analysis.claims import multiplicity
from gradatlas.analysis.claims.claim import Claim
from gradatlas.analysis.claims.decision import combine
from gradatlas.analysis.claims.parts import Part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold
from gradatlas.analysis.claims.verdicts import NO_DATA
from gradatlas.core.forked import forked_map

GRID_POINTS = 21
COLUMNS = ("claim", "threshold", "meaning", "value", "search_low", "search_high", "log", "verdict",
           "stable_low", "stable_high", "open_low", "open_high", "verdict_below", "verdict_above")


@dataclass(frozen=True)
class StableRange:
    """The verdict of one claim over one threshold's search range (the others fixed)."""

    claim: int
    threshold: Threshold
    verdict: str
    grid: tuple[float, ...]
    verdicts: tuple[str, ...]

    def _span(self) -> tuple[int, int]:
        centre = self.grid.index(self.threshold.value)
        low = high = centre
        while low > 0 and self.verdicts[low - 1] == self.verdict:
            low -= 1
        while high < len(self.grid) - 1 and self.verdicts[high + 1] == self.verdict:
            high += 1
        return low, high

    @property
    def low(self) -> float:
        """The smallest grid value of the stable range."""
        return self.grid[self._span()[0]]

    @property
    def high(self) -> float:
        """The largest grid value of the stable range."""
        return self.grid[self._span()[1]]

    @property
    def open_low(self) -> bool:
        """Whether the stable range reaches the bottom of the search range."""
        return self._span()[0] == 0

    @property
    def open_high(self) -> bool:
        """Whether the stable range reaches the top of the search range."""
        return self._span()[1] == len(self.grid) - 1

    @property
    def below(self) -> str:
        """The verdict just below the stable range ('' when it is open there)."""
        low, _ = self._span()
        return "" if low == 0 else self.verdicts[low - 1]

    @property
    def above(self) -> str:
        """The verdict just above the stable range ('' when it is open there)."""
        _, high = self._span()
        return "" if high == len(self.grid) - 1 else self.verdicts[high + 1]


def _verdict(parts: Optional[list[Part]], others: list[float]) -> str:
    if not parts:
        return NO_DATA
    multiplicity.adjust(parts, others)
    return combine(parts)


def claim_ranges(claim: Claim, tables: Tables, others: list[float], points: int = GRID_POINTS) -> list[StableRange]:
    """The stable range of each of ``claim``'s thresholds; ``others``: the p-values of the
    rest of the ledger's family."""
    base = _verdict(claim.sub_claims(tables), others)
    out = []
    for threshold in claim.thresholds:
        grid = threshold.grid(points)
        verdicts = tuple(base if value == threshold.value else
                         _verdict(claim.sub_claims(tables, {threshold.name: value}), others) for value in grid)
        out.append(StableRange(claim.id, threshold, base, tuple(grid), verdicts))
    return out


def ledger_ranges(claims: Iterable[Claim], tables: Tables, points: int = GRID_POINTS,
                  processes: int = 1) -> list[StableRange]:
    """The stable ranges of every threshold of every claim, the family fixed at the ledger's own
    sub-claims (the p-values ``claims.ledger.evaluate`` gives them). With ``processes`` > 1 the
    claims are spread over that many forked workers (the result is the same, in the same
    order); the threshold-free measures the ledger's evaluation caches here are theirs too."""
    claims = list(claims)
    found = {c.id: c.sub_claims(tables) for c in claims}
    multiplicity.adjust([p for parts in found.values() if parts for p in parts])
    p_values = {cid: [p.p_value for p in multiplicity.family(parts)] if parts else [] for cid, parts in found.items()}
    others = {c.id: [p for cid, ps in p_values.items() if cid != c.id for p in ps] for c in claims}
    # One item per claim, the claims with the most thresholds first so that the workers finish
    # together: a worker keeps a claim's memos (its p-values, intervals, threshold-dependent
    # measures), which one item per threshold would compute in both (measured: 89 s against 78).
    order = sorted(claims, key=lambda c: -len(c.thresholds))
    done = dict(zip((c.id for c in order),
                    forked_map(lambda c: claim_ranges(c, tables, others[c.id], points), order, processes)))
    return [r for claim in claims for r in done[claim.id]]


def ranges_frame(ranges: Iterable[StableRange]) -> pd.DataFrame:
    """One row per threshold, columns ``COLUMNS``."""
    rows = [{"claim": r.claim, "threshold": r.threshold.name, "meaning": r.threshold.meaning,
             "value": r.threshold.value, "search_low": r.threshold.low, "search_high": r.threshold.high,
             "log": r.threshold.log, "verdict": r.verdict, "stable_low": r.low, "stable_high": r.high,
             "open_low": r.open_low, "open_high": r.open_high, "verdict_below": r.below, "verdict_above": r.above}
            for r in ranges]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def relative_width(row: pd.Series) -> float:
    """How far the threshold can move, as the smaller of its two margins relative to its value
    (log-ratio for a logarithmic threshold, difference otherwise; inf where open)."""
    if row["log"]:
        down = math.inf if row["open_low"] else math.log(row["value"] / row["stable_low"])
        up = math.inf if row["open_high"] else math.log(row["stable_high"] / row["value"])
    else:
        down = math.inf if row["open_low"] else row["value"] - row["stable_low"]
        up = math.inf if row["open_high"] else row["stable_high"] - row["value"]
    return min(down, up)

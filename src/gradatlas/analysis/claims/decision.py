"""From sub-claim verdicts to the claim's summary verdict, its stability and its deciding sub-claims.

The claim's summary verdict, from its decisive sub-claims (informational ones never vote):
``no data at this scale`` when none found the cells it needs; ``supported`` when every one is
supported; ``contradicted`` when every one is contradicted; ``mixed`` when at least one is
supported and at least one contradicted (the ledger names one of each); ``inconclusive``
otherwise (some undecided, none against another).

The *deciding sub-claim* is the one the ledger shows beside the verdict, never a headline that
did not decide: for ``contradicted`` and ``mixed`` the first contradicted one (for ``mixed``
the first supported one is named beside it, ``counter_part``); for ``inconclusive`` the first
that is not supported; for ``supported`` the least stable one, whose verdict a different draw
of seeds would most likely change.

The *stability* is the share of ``STABILITY_DRAWS`` replicate draws whose summary verdict
equals the observed one; each sub-claim's rule is re-run on its own draws (``parts``), with
its intervals at the confidence its adjusted verdict uses (``multiplicity``), from a fixed
RNG seed per claim and sub-claim, so the ledger is reproducible. A verdict with stability
below ``STABLE`` is reported as ``inconclusive (unstable)``, with the would-be verdict beside it.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from gradatlas.analysis.claims.parts import Part
from gradatlas.analysis.claims.verdicts import CONTRADICTED, INCONCLUSIVE, MIXED, NO_DATA, SUPPORTED, UNSTABLE

STABILITY_DRAWS = 1000
STABILITY_SEED = 0
STABLE = 0.9


def combine_array(verdicts: np.ndarray, decisive: np.ndarray) -> np.ndarray:
    """Claim verdicts from part verdicts (rows: parts, columns: draws; rules in the module
    docstring)."""
    v = np.asarray(verdicts, dtype=object)[np.asarray(decisive, dtype=bool)]
    count = v.shape[1] if v.ndim == 2 else 0
    if v.shape[0] == 0:
        return np.full(count, NO_DATA, dtype=object)
    has_data = v != NO_DATA
    supported, contradicted = v == SUPPORTED, v == CONTRADICTED
    out = np.full(v.shape[1], INCONCLUSIVE, dtype=object)
    out[supported.all(axis=0)] = SUPPORTED
    out[contradicted.all(axis=0)] = CONTRADICTED
    out[supported.any(axis=0) & contradicted.any(axis=0)] = MIXED
    out[~has_data.any(axis=0)] = NO_DATA
    return out


def combine(parts: list[Part]) -> str:
    """The claim verdict from its parts (rules in the module docstring)."""
    if not parts:
        return NO_DATA
    verdicts = np.array([[p.verdict] for p in parts], dtype=object)
    return str(combine_array(verdicts, np.array([p.decisive for p in parts]))[0])


def stability(parts: list[Part], claim_id: int, draws: int = STABILITY_DRAWS, seed: int = STABILITY_SEED
              ) -> tuple[str, float]:
    """The claim verdict and its stability: the share of ``draws`` replicate draws whose
    verdict is the same. Sets each part's own ``stability`` on the way.

    Each part draws from its own RNG stream (seeded by ``seed``, the claim and the part's
    position), so adding a part does not change the draws of the others.
    """
    verdict = combine(parts)
    if not parts:
        return verdict, math.nan
    rows = []
    for index, part in enumerate(parts):
        rng = np.random.default_rng([seed, claim_id, index])
        row = part.resample(rng, draws)
        part.stability = float(np.mean(row == part.verdict))
        rows.append(row)
    drawn = combine_array(np.vstack(rows), np.array([p.decisive for p in parts]))
    return verdict, float(np.mean(drawn == verdict))


def deciding_part(parts: list[Part], verdict: str) -> Optional[Part]:
    """The part that decided ``verdict`` (see the module docstring), or None without parts."""
    decisive = [p for p in parts if p.decisive]
    if not decisive:
        return None
    if verdict in (CONTRADICTED, MIXED):
        return next(p for p in decisive if p.verdict == CONTRADICTED)
    if verdict == SUPPORTED:
        return min(decisive, key=lambda p: (p.stability if not math.isnan(p.stability) else 1.0))
    return next((p for p in decisive if p.verdict != SUPPORTED), decisive[0])


def counter_part(parts: list[Part], verdict: str) -> Optional[Part]:
    """For a ``mixed`` verdict, the first supported sub-claim (the deciding one is contradicted); else None."""
    if verdict != MIXED:
        return None
    return next(p for p in parts if p.decisive and p.verdict == SUPPORTED)


def reported_verdict(verdict: str, stable: float) -> str:
    """The verdict the ledger reports: ``UNSTABLE`` when its stability is below ``STABLE``."""
    return UNSTABLE if not math.isnan(stable) and stable < STABLE else verdict


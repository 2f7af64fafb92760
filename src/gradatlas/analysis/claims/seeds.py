"""The seed rule: a pilot's spread turned into the seeds a larger scale needs, fixed before it runs.

The quick scale is the pilot. For every decisive sub-claim over seeds (``parts.seed_part``) of
the pilot's ledger, the pilot's estimates (mean and spread of its per-seed values, on the log
scale for a positive quantity) are taken as the truth, and ``SIMULATED_STUDIES`` studies of n
seeds are drawn from that normal model and judged by the sub-claim's rule at the confidence
its Holm step used. The *target* verdict is what the rule gives at the pilot's effect itself
(an interval of zero width); the seeds needed are the smallest n of ``CANDIDATE_SEEDS`` whose
simulated studies give the target in at least ``TARGET_STABILITY`` of the draws. A sub-claim
whose effect sits on its threshold (target inconclusive) or that does not reach the target
within ``CANDIDATE_SEEDS[-1]`` seeds is listed as unreachable, with its stability there.

Each cell a sub-claim reads (``measures.CELLS_ATTR``) then needs that many seeds; a cell read
by several gets the largest. ``python -m gradatlas.analysis seeds`` writes the result to
``conf/pilot/<scale>.yaml``, committed before that scale runs (``gradatlas.workflow.studies``
gives each listed cell at least its seeds there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

from gradatlas.analysis.claims.claim import ClaimResult
from gradatlas.analysis.claims.parts import MIN_SEEDS, Part
from gradatlas.analysis.claims.verdicts import CONTRADICTED, SUPPORTED

TARGET_STABILITY = 0.9
SIMULATED_STUDIES = 2000
CANDIDATE_SEEDS = (4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64)
RULE_SEED = 0


@dataclass(frozen=True)
class SeedNeed:
    """What one sub-claim of the pilot needs: its cells, the target verdict, the seeds (None:
    unreachable) and the simulated stability at those seeds (or at the largest candidate)."""

    claim: int
    part: str
    cells: tuple[tuple[str, str], ...]
    pilot_seeds: int
    value: float
    target: str
    seeds: Optional[int]
    stability: float


def target_verdict(part: Part) -> str:
    """The verdict the sub-claim's rule gives at the pilot's effect with no uncertainty."""
    v = np.float64(part.value)
    return str(part.judge(v, v, v))


def seeds_for(part: Part, rng: np.random.Generator) -> tuple[str, Optional[int], float]:
    """(target verdict, the seeds needed or None, the simulated stability there)."""
    target = target_verdict(part)
    if target not in (SUPPORTED, CONTRADICTED):
        return target, None, float("nan")
    stability = float("nan")
    for n in CANDIDATE_SEEDS:
        if n < MIN_SEEDS:
            continue
        stability = float(np.mean(part.simulate(rng, n, SIMULATED_STUDIES, part.confidence) == target))
        if stability >= TARGET_STABILITY:
            return target, n, stability
    return target, None, stability


def seed_needs(results: dict[int, ClaimResult]) -> list[SeedNeed]:
    """The seed rule over every decisive seed-based sub-claim of a pilot ledger (claim id order;
    one RNG stream per claim and sub-claim, so the rule's output is reproducible)."""
    needs = []
    for claim_id, result in sorted(results.items()):
        for index, part in enumerate(result.parts):
            if not part.decisive or part.simulate is None or not part.cells or not np.isfinite(part.value):
                continue
            rng = np.random.default_rng([RULE_SEED, claim_id, index])
            target, seeds, stability = seeds_for(part, rng)
            needs.append(SeedNeed(claim_id, part.name, part.cells, part.n, float(part.value), target, seeds, stability))
    return needs


def cell_seeds(needs: Iterable[SeedNeed]) -> dict[tuple[str, str], tuple[int, list[SeedNeed]]]:
    """(study, cell) -> (the largest seeds any reachable sub-claim needs there, those sub-claims)."""
    out: dict[tuple[str, str], tuple[int, list[SeedNeed]]] = {}
    for need in needs:
        if need.seeds is None:
            continue
        for cell in need.cells:
            seeds, why = out.get(cell, (0, []))
            out[cell] = (max(seeds, need.seeds), [*why, need])
    return out

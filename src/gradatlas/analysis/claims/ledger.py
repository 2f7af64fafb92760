"""Every registered claim evaluated on one summary, as the ledger's two frames: one row per
claim (``verdict_frame``) and one per part (``parts_frame``)."""

from __future__ import annotations

import pandas as pd

from gradatlas.analysis.claims.claim import ClaimResult
from gradatlas.analysis.claims.decision import STABILITY_DRAWS
from gradatlas.analysis.claims.parts import Part
from gradatlas.analysis.claims.registry import CLAIMS
from gradatlas.analysis.claims.summary import Tables

RESULT_COLUMNS = ("claim", "title", "statement", "study", "metric", "parts", "deciding", "value", "ci_low",
                  "ci_high", "interval", "n", "verdict", "would_be", "stability", "rule", "detail")
PART_COLUMNS = ("claim", "part", "value", "ci_low", "ci_high", "interval", "n", "verdict", "stability",
                "decisive", "deciding", "note")


def _parts_summary(parts: tuple[Part, ...]) -> str:
    """Every part in one line each: '[decisive] name: value [low, high] (method), n -> verdict, stability'."""
    return "\n".join(("" if p.decisive else "(reported) ") + p.describe() for p in parts)


def evaluate(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame,
             draws: int = STABILITY_DRAWS) -> dict[int, ClaimResult]:
    """Every claim of ``CLAIMS`` evaluated once: claim id -> ``ClaimResult``."""
    tables = Tables(runs, layers, timesteps)
    return {claim.id: claim.evaluate(runs, layers, timesteps, tables, draws) for claim in CLAIMS.values()}


def verdict_frame(results: dict[int, ClaimResult]) -> pd.DataFrame:
    """One row per claim, columns ``RESULT_COLUMNS``: the deciding part's value, interval and n,
    the reported and would-be verdicts, the stability and every part."""
    rows = []
    for claim_id, result in results.items():
        claim, part = CLAIMS[claim_id], result.deciding
        rows.append({"claim": claim.id, "title": claim.title, "statement": claim.statement,
                     "study": ", ".join(claim.studies), "metric": claim.metric,
                     "parts": _parts_summary(result.parts), "deciding": part.name if part else "",
                     "value": result.value, "ci_low": result.ci_low, "ci_high": result.ci_high,
                     "interval": part.interval if part else "", "n": int(result.n),
                     "verdict": result.verdict, "would_be": result.would_be, "stability": result.stability,
                     "rule": claim.rule, "detail": result.detail})
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def parts_frame(results: dict[int, ClaimResult]) -> pd.DataFrame:
    """One row per part of every claim, columns ``PART_COLUMNS``."""
    rows = []
    for claim_id, result in results.items():
        for part in result.parts:
            rows.append({"claim": claim_id, "part": part.name, "value": part.value, "ci_low": part.ci_low,
                         "ci_high": part.ci_high, "interval": part.interval, "n": part.n,
                         "verdict": part.verdict, "stability": part.stability, "decisive": part.decisive,
                         "deciding": part is result.deciding, "note": part.note})
    return pd.DataFrame(rows, columns=list(PART_COLUMNS))


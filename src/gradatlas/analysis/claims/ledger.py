"""Every registered claim evaluated on one summary, as the ledger's two frames: one row per
claim (``verdict_frame``) and one per part (``parts_frame``), each with the claim's replicas
(``replicas``) beside it."""

from __future__ import annotations

import math
from typing import Optional

import pandas as pd

from gradatlas.analysis.claims.claim import ClaimResult
from gradatlas.analysis.claims.decision import STABILITY_DRAWS
from gradatlas.analysis.claims.parts import Part
from gradatlas.analysis.claims.registry import CLAIMS
from gradatlas.analysis.claims.replicas import REPLICA_DATA, evaluate_replicas
from gradatlas.analysis.claims.summary import Tables

# Per data set of REPLICA_DATA, the replica's verdict and deciding part: columns "<field>_<data>"
# (verdict_digits, ...); empty (NaN, "") for a claim not replicated on that data.
REPLICA_FIELDS = ("verdict", "would_be", "deciding", "value", "ci_low", "ci_high", "interval", "n", "stability")
REPLICA_COLUMNS = tuple(f"{field}_{data}" for data in REPLICA_DATA for field in REPLICA_FIELDS)
RESULT_COLUMNS = ("claim", "title", "statement", "study", "metric", "parts", "deciding", "value", "ci_low",
                  "ci_high", "interval", "n", "verdict", "would_be", "stability", "rule", "detail", *REPLICA_COLUMNS)
# ``replica``: "" for the claim's own studies, the data set for a replica's parts.
PART_COLUMNS = ("claim", "replica", "part", "value", "ci_low", "ci_high", "interval", "n", "verdict", "stability",
                "decisive", "deciding", "note")

Replicas = dict[str, dict[int, ClaimResult]]


def _parts_summary(parts: tuple[Part, ...]) -> str:
    """Every part in one line each: '[decisive] name: value [low, high] (method), n -> verdict, stability'."""
    return "\n".join(("" if p.decisive else "(reported) ") + p.describe() for p in parts)


def evaluate(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame,
             draws: int = STABILITY_DRAWS) -> dict[int, ClaimResult]:
    """Every claim of ``CLAIMS`` evaluated once: claim id -> ``ClaimResult``."""
    tables = Tables(runs, layers, timesteps)
    return {claim.id: claim.evaluate(runs, layers, timesteps, tables, draws) for claim in CLAIMS.values()}


def evaluate_all(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame,
                 draws: int = STABILITY_DRAWS) -> tuple[dict[int, ClaimResult], Replicas]:
    """Every claim on its own studies and on its replicas (one ``Tables``, its caches shared)."""
    tables = Tables(runs, layers, timesteps)
    results = {claim.id: claim.evaluate(runs, layers, timesteps, tables, draws) for claim in CLAIMS.values()}
    return results, evaluate_replicas(CLAIMS, runs, layers, timesteps, tables, draws)


def _result_fields(result: Optional[ClaimResult]) -> dict:
    """A result's verdict and deciding part as REPLICA_FIELDS (empty without a result)."""
    if result is None:
        return {"verdict": "", "would_be": "", "deciding": "", "value": math.nan, "ci_low": math.nan,
                "ci_high": math.nan, "interval": "", "n": 0, "stability": math.nan}
    part = result.deciding
    return {"verdict": result.verdict, "would_be": result.would_be, "deciding": part.name if part else "",
            "value": result.value, "ci_low": result.ci_low, "ci_high": result.ci_high,
            "interval": part.interval if part else "", "n": int(result.n), "stability": result.stability}


def verdict_frame(results: dict[int, ClaimResult], replicas: Optional[Replicas] = None) -> pd.DataFrame:
    """One row per claim, columns ``RESULT_COLUMNS``: the deciding part's value, interval and n,
    the reported and would-be verdicts, the stability and every part; then each replica's
    (``REPLICA_COLUMNS``, empty where the claim has none or ``replicas`` is not given)."""
    rows = []
    for claim_id, result in results.items():
        claim = CLAIMS[claim_id]
        row = {"claim": claim.id, "title": claim.title, "statement": claim.statement,
               "study": ", ".join(claim.studies), "metric": claim.metric, "parts": _parts_summary(result.parts),
               **_result_fields(result), "rule": claim.rule, "detail": result.detail}
        for data in REPLICA_DATA:
            replica = (replicas or {}).get(data, {}).get(claim_id)
            row.update({f"{field}_{data}": value for field, value in _result_fields(replica).items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def parts_frame(results: dict[int, ClaimResult], replicas: Optional[Replicas] = None) -> pd.DataFrame:
    """One row per part of every claim, columns ``PART_COLUMNS``; each claim's replicas' parts
    follow its own, marked by ``replica``."""
    rows = []
    for claim_id, result in results.items():
        sources = [("", result)] + [(data, (replicas or {}).get(data, {}).get(claim_id)) for data in REPLICA_DATA]
        for replica, source in sources:
            for part in source.parts if source is not None else ():
                rows.append({"claim": claim_id, "replica": replica, "part": part.name, "value": part.value,
                             "ci_low": part.ci_low, "ci_high": part.ci_high, "interval": part.interval,
                             "n": part.n, "verdict": part.verdict, "stability": part.stability,
                             "decisive": part.decisive, "deciding": part is source.deciding, "note": part.note})
    return pd.DataFrame(rows, columns=list(PART_COLUMNS))

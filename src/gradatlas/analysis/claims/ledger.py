"""Every registered claim evaluated on one summary, as the ledger's two frames: one row per
claim (``verdict_frame``) and one per sub-claim (``parts_frame``), each with the claim's
replicas (``replicas``) beside it.

The sub-claims of every claim form one family: each decisive one is Holm-adjusted over all of
them (``multiplicity``) before the claims' summary verdicts and stabilities are drawn."""

from __future__ import annotations

import math
from typing import Optional

import pandas as pd

from gradatlas.analysis.claims import multiplicity
from gradatlas.analysis.claims.claim import ClaimResult
from gradatlas.analysis.claims.decision import STABILITY_DRAWS
from gradatlas.analysis.claims.parts import Part
from gradatlas.analysis.claims.registry import CLAIMS
from gradatlas.analysis.claims.replicas import REPLICA_DATA, Replicas, evaluate_replicas
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.verdicts import CONTRADICTED, INCONCLUSIVE, NO_DATA, SUPPORTED, bounds_of

# Per data set of REPLICA_DATA, the replica's summary verdict and deciding sub-claim: columns
# "<field>_<data>" (verdict_digits, ...); empty ("", NaN, 0) for a claim not replicated on it.
REPLICA_FIELDS = ("verdict", "would_be", "deciding", "value", "ci_low", "ci_high", "adj_low", "adj_high", "interval",
                  "n", "stability")
REPLICA_COLUMNS = tuple(f"{field}_{data}" for data in REPLICA_DATA for field in REPLICA_FIELDS)
# bound_low, bound_high: the thresholds the deciding sub-claim's rule compares with (equal for a
# one-sided rule; NaN where its rule states none).
RESULT_COLUMNS = ("claim", "title", "statement", "study", "metric", "parts", "deciding", "value", "ci_low",
                  "ci_high", "adj_low", "adj_high", "bound_low", "bound_high", "confidence", "p_adjusted", "interval", "n", "verdict",
                  "would_be", "stability", "counter", "counter_value", "counter_adj_low", "counter_adj_high",
                  "sub_supported", "sub_contradicted", "sub_inconclusive", "sub_no_data", "reported", "rule",
                  "detail", *REPLICA_COLUMNS)
# ``replica``: "" for the claim's own studies, the data set for a replica's sub-claims.
PART_COLUMNS = ("claim", "replica", "part", "value", "ci_low", "ci_high", "adj_low", "adj_high", "confidence", "interval",
                "n", "unadjusted", "p_value", "p_adjusted", "verdict", "stability", "decisive", "deciding",
                "note")


def _parts_summary(parts: tuple[Part, ...]) -> str:
    """Every part in one line each: '[decisive] name: value [low, high] (method), n -> verdict, stability'."""
    return "\n".join(("" if p.decisive else "(reported) ") + p.describe() for p in parts)


def evaluate(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame,
             draws: int = STABILITY_DRAWS, steps: Optional[pd.DataFrame] = None) -> dict[int, ClaimResult]:
    """Every claim of ``CLAIMS`` evaluated once, its sub-claims Holm-adjusted over the whole
    ledger's family (``multiplicity``): claim id -> ``ClaimResult``."""
    return evaluate_tables(Tables(runs, layers, timesteps, steps), draws)


def evaluate_tables(tables: Tables, draws: int = STABILITY_DRAWS) -> dict[int, ClaimResult]:
    """``evaluate`` on a ``Tables`` view (its caches shared by every claim)."""
    parts = {claim.id: claim.sub_claims(tables) for claim in CLAIMS.values()}
    multiplicity.adjust([p for found in parts.values() if found for p in found])
    return {claim.id: claim.result(parts[claim.id], draws) for claim in CLAIMS.values()}


def evaluate_all(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame,
                 draws: int = STABILITY_DRAWS, steps: Optional[pd.DataFrame] = None
                 ) -> tuple[dict[int, ClaimResult], Replicas]:
    """Every claim on its own studies (``evaluate``) and on its replicas (``replicas``), from one
    ``Tables`` whose caches both share."""
    tables = Tables(runs, layers, timesteps, steps)
    return evaluate_tables(tables, draws), evaluate_replicas(CLAIMS, tables, draws)


def _replica_fields(result: Optional[ClaimResult]) -> dict:
    """A replica's summary verdict and deciding sub-claim as REPLICA_FIELDS (empty without one)."""
    part = result.deciding if result is not None else None
    if result is None:
        return {"verdict": "", "would_be": "", "deciding": "", "value": math.nan, "ci_low": math.nan,
                "ci_high": math.nan, "adj_low": math.nan, "adj_high": math.nan, "interval": "", "n": 0,
                "stability": math.nan}
    return {"verdict": result.verdict, "would_be": result.would_be, "deciding": part.name if part else "",
            "value": result.value, "ci_low": result.ci_low, "ci_high": result.ci_high,
            "adj_low": part.adj_low if part else math.nan, "adj_high": part.adj_high if part else math.nan,
            "interval": part.interval if part else "", "n": int(result.n), "stability": result.stability}


def _bounds(part: Optional[Part]) -> dict[str, float]:
    """The deciding sub-claim's thresholds as ``bound_low``, ``bound_high``."""
    bounds = bounds_of(part.judge) if part is not None else ()
    return {"bound_low": bounds[0] if bounds else math.nan, "bound_high": bounds[-1] if bounds else math.nan}


def verdict_frame(results: dict[int, ClaimResult], replicas: Optional[Replicas] = None) -> pd.DataFrame:
    """One row per claim, columns ``RESULT_COLUMNS``: the deciding part's value, interval and n,
    the reported and would-be verdicts, the stability and every part; then each replica's
    (``REPLICA_COLUMNS``, empty where the claim has none or ``replicas`` is not given)."""
    rows = []
    for claim_id, result in results.items():
        claim, part, counter = CLAIMS[claim_id], result.deciding, result.counter
        decisive = [p.verdict for p in result.parts if p.decisive]
        rows.append({"claim": claim.id, "title": claim.title, "statement": claim.statement,
                     "study": ", ".join(claim.studies), "metric": claim.metric,
                     "parts": _parts_summary(result.parts), "deciding": part.name if part else "",
                     "value": result.value, "ci_low": result.ci_low, "ci_high": result.ci_high,
                     "adj_low": part.adj_low if part else math.nan, "adj_high": part.adj_high if part else math.nan,
                     **_bounds(part),
                     "confidence": part.confidence if part else math.nan,
                     "p_adjusted": part.p_adjusted if part else math.nan,
                     "interval": part.interval if part else "", "n": int(result.n),
                     "verdict": result.verdict, "would_be": result.would_be, "stability": result.stability,
                     "counter": counter.name if counter else "",
                     "counter_value": counter.value if counter else math.nan,
                     "counter_adj_low": counter.adj_low if counter else math.nan,
                     "counter_adj_high": counter.adj_high if counter else math.nan,
                     "sub_supported": decisive.count(SUPPORTED), "sub_contradicted": decisive.count(CONTRADICTED),
                     "sub_inconclusive": decisive.count(INCONCLUSIVE), "sub_no_data": decisive.count(NO_DATA),
                     "reported": sum(not p.decisive for p in result.parts),
                     "rule": claim.rule, "detail": result.detail,
                     **{f"{field}_{data}": value for data in REPLICA_DATA
                        for field, value in _replica_fields((replicas or {}).get(data, {}).get(claim_id)).items()}})
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
                             "ci_low": part.ci_low, "ci_high": part.ci_high, "adj_low": part.adj_low,
                             "adj_high": part.adj_high, "confidence": part.confidence, "interval": part.interval,
                             "n": part.n, "unadjusted": part.unadjusted or part.verdict, "p_value": part.p_value,
                             "p_adjusted": part.p_adjusted, "verdict": part.verdict, "stability": part.stability,
                             "decisive": part.decisive,
                             "deciding": part is source.deciding or part is source.counter, "note": part.note})
    return pd.DataFrame(rows, columns=list(PART_COLUMNS))

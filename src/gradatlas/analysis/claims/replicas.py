"""Replicas: a claim decided again, by the same computation, on another data set.

A claim that names a data set in ``Claim.replicas`` is evaluated a second time on the replica
studies ``<study>_<data>`` (``conf/studies/depth_activation_init_digits.yaml`` replicates
``depth_activation_init`` with ``data: digits``): ``replica_tables`` renames those studies to
their originals and leaves every other run out, so the claim's code, which selects runs by
its studies' names, reads the replica as it reads the original. A study the replica does not
repeat is absent from the view (the claim says which of its studies it lacks), never filled in
from the original.
"""

from __future__ import annotations

import pandas as pd

from gradatlas.analysis.claims.claim import Claim, ClaimResult
from gradatlas.analysis.claims.decision import STABILITY_DRAWS
from gradatlas.analysis.claims.summary import Tables

# The data sets claims are replicated on, in the ledger's column order.
REPLICA_DATA = ("digits",)


def replica_study(study: str, data: str) -> str:
    """The name of ``study``'s replica on ``data``."""
    return f"{study}_{data}"


def replica_tables(tables: Tables, claim: Claim, data: str) -> Tables:
    """``tables`` as ``claim`` reads its replica on ``data``: the replica studies under their
    originals' names, nothing else."""
    return tables.renamed({replica_study(study, data): study for study in claim.studies})


def evaluate_replicas(claims: dict[int, Claim], runs: pd.DataFrame, layers: pd.DataFrame,
                      timesteps: pd.DataFrame, tables: Tables | None = None,
                      draws: int = STABILITY_DRAWS) -> dict[str, dict[int, ClaimResult]]:
    """data -> claim id -> the claim evaluated on its replica studies on that data, for every
    claim that names the data in ``Claim.replicas``."""
    tables = tables or Tables(runs, layers, timesteps)
    out: dict[str, dict[int, ClaimResult]] = {}
    for data in REPLICA_DATA:
        out[data] = {}
        for claim in claims.values():
            if data in claim.replicas:
                view = replica_tables(tables, claim, data)
                out[data][claim.id] = claim.evaluate(view.runs, view.layers, view.timesteps, view, draws)
    return out

"""Replicas: a claim decided again, by the same computation, on another data set.

A claim that names a data set in ``Claim.replicas`` is evaluated a second time on the replica
studies ``<study>_<data>`` (``conf/studies/depth_activation_init_digits.yaml`` replicates
``depth_activation_init`` with ``data: digits``): ``replica_tables`` renames those studies to
their originals and leaves every other run out, so the claim's code, which selects runs by
its studies' names, reads the replica as it reads the original. A study the replica does not
repeat is absent from the view (the claim says which of its studies it lacks), never filled in
from the original. The replicas on one data set are a family of their own: their decisive
sub-claims are Holm-adjusted together (``multiplicity``), apart from the ledger's own family.
"""

from __future__ import annotations

from gradatlas.analysis.claims import multiplicity
from gradatlas.analysis.claims.claim import Claim, ClaimResult
from gradatlas.analysis.claims.decision import STABILITY_DRAWS
from gradatlas.analysis.claims.summary import Tables

# The data sets claims are replicated on, in the ledger's column order.
REPLICA_DATA = ("digits",)

# data -> claim id -> the claim's result on its replica studies on that data.
Replicas = dict[str, dict[int, ClaimResult]]


def replica_study(study: str, data: str) -> str:
    """The name of ``study``'s replica on ``data``."""
    return f"{study}_{data}"


def replica_tables(tables: Tables, claims: list[Claim], data: str) -> Tables:
    """``tables`` as ``claims`` read their replicas on ``data``: the replica studies under their
    originals' names, nothing else."""
    return tables.renamed({replica_study(study, data): study for claim in claims for study in claim.studies})


def evaluate_replicas(claims: dict[int, Claim], tables: Tables, draws: int = STABILITY_DRAWS) -> Replicas:
    """data -> claim id -> the claim evaluated on its replica studies on that data, for every
    claim that names the data in ``Claim.replicas``."""
    out: Replicas = {}
    for data in REPLICA_DATA:
        replicated = [claim for claim in claims.values() if data in claim.replicas]
        view = replica_tables(tables, replicated, data)
        parts = {claim.id: claim.sub_claims(view) for claim in replicated}
        multiplicity.adjust([p for found in parts.values() if found for p in found])
        out[data] = {claim.id: claim.result(parts[claim.id], draws) for claim in replicated}
    return out

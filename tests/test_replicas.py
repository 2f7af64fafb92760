"""Replicas: a claim decided again, by its own computation, on the studies ``<study>_digits``;
the ledger's frames and the claims tables show the replica's verdict beside the claim's own."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_claims import Builder

from gradatlas.analysis import claims, tables
from gradatlas.analysis.claims import CONTRADICTED, NO_DATA, SUPPORTED

pytestmark = pytest.mark.unit

STUDIES = Path(__file__).resolve().parents[1] / "conf" / "studies"


def _residual(b: Builder, study: str, resmlp: float) -> None:
    """Four seeds of claim 10's cells: the plain MLP at chance at depth 20, resmlp at ``resmlp``."""
    for seed in range(4):
        b.run(study, seed, model="mlp", activation="relu", depth=20.0, test_metric=0.1 + 0.001 * seed)
        b.run(study, seed, model="resmlp", activation="relu", depth=20.0, test_metric=resmlp + 0.01 * seed,
              data="digits" if study.endswith("_digits") else "mnist1d")


def test_the_replica_is_the_claims_computation_on_the_renamed_studies():
    both = Builder()
    _residual(both, "residual", resmlp=0.8)
    _residual(both, "residual_digits", resmlp=0.0)   # the residual net fails on the replica
    results, replicas = claims.evaluate_all(*both.tables(), draws=200)
    # Reference: each study alone, under the original name, in a table of its own.
    own, replica = Builder(), Builder()
    _residual(own, "residual", resmlp=0.8)
    _residual(replica, "residual", resmlp=0.0)
    expected_own = claims.CLAIMS[10].evaluate(*own.tables(), draws=200)
    expected_replica = claims.CLAIMS[10].evaluate(*replica.tables(), draws=200)
    assert results[10].verdict == expected_own.verdict == SUPPORTED
    assert replicas["digits"][10].would_be == expected_replica.would_be == CONTRADICTED
    assert replicas["digits"][10].value == pytest.approx(expected_replica.value)
    assert results[10].value == pytest.approx(expected_own.value)


def test_the_frames_show_the_replica_beside_the_claim():
    b = Builder()
    _residual(b, "residual", resmlp=0.8)
    _residual(b, "residual_digits", resmlp=0.0)
    results, replicas = claims.evaluate_all(*b.tables(), draws=200)
    frame = claims.verdict_frame(results, replicas).set_index("claim")
    for column in ("verdict_digits", "value_digits", "ci_low_digits", "ci_high_digits", "interval_digits",
                   "n_digits", "stability_digits", "deciding_digits"):
        assert column in frame
    row = frame.loc[10]
    assert row["verdict"] == SUPPORTED and row["verdict_digits"] == CONTRADICTED
    # The deciding sub-claim on digits: the residual net learns nothing (a negative skill gap).
    assert row["value_digits"] < 0 and row["n_digits"] == 4
    # A claim at initialization has no replica; a replicated claim without its replica studies
    # has no data there, never the original's numbers.
    assert frame.loc[1, "verdict_digits"] == "" and math.isnan(frame.loc[1, "value_digits"])
    assert frame.loc[13, "verdict_digits"] == NO_DATA
    parts = claims.parts_frame(results, replicas)
    ten = parts[parts["claim"] == 10]
    assert set(ten["replica"]) == {"", "digits"}
    assert (ten[ten["replica"] == "digits"]["verdict"] == CONTRADICTED).any()
    assert (ten[ten["replica"] == ""]["verdict"] == SUPPORTED).all()


def test_the_claims_tables_show_the_replica_verdict():
    b = Builder()
    _residual(b, "residual", resmlp=0.8)
    _residual(b, "residual_digits", resmlp=0.0)
    verdicts = claims.verdict_frame(*claims.evaluate_all(*b.tables(), draws=200))
    tex = tables.claims_table(verdicts)
    header = tex[tex.index(r"\toprule"):tex.index(r"\midrule")]
    assert "Digits" in header
    row = next(line for line in tex.splitlines() if line.startswith("10 & "))
    stability = float(verdicts.set_index("claim").loc[10, "stability_digits"])
    assert stability > 0.9 and row.endswith(f"& C {stability:.2f} " + "\\\\")
    assert next(line for line in tex.splitlines() if line.startswith("1 & ")).endswith(r"& -- \\")
    replica = tables.replica_table(verdicts)
    assert r"\label{tab:claims-replicas}" in replica
    rows = [line for line in replica.splitlines() if line.endswith(r"\\") and line[:1].isdigit()]
    # Every replicated claim is listed (with no data where its replica studies are absent), no other.
    assert sorted(int(line.split(" & ")[0]) for line in rows) == sorted(
        cid for cid, c in claims.CLAIMS.items() if "digits" in c.replicas)
    ten = next(line for line in rows if line.startswith("10 & "))
    assert "supported" in ten and "contradicted" in ten


def test_every_replica_study_is_the_digits_copy_of_a_study_its_claims_read():
    declared = {cid: c for cid, c in claims.CLAIMS.items() if "digits" in c.replicas}
    found: dict[int, set[str]] = {}
    for path in sorted(STUDIES.glob("*_digits.yaml")):
        raw = yaml.safe_load(path.read_text())
        original = path.stem[: -len("_digits")]
        assert (STUDIES / f"{original}.yaml").exists(), path.name
        assert raw["fixed"]["data"] == "digits", path.name
        for cid in raw["claims"]:
            assert cid in declared and original in declared[cid].studies, (path.name, cid)
            found.setdefault(cid, set()).add(original)
    assert set(found) == set(declared)
    # A replica keeps the original's fixed architecture and optimizer choices but the data.
    for cid, originals in found.items():
        for original in originals:
            base = yaml.safe_load((STUDIES / f"{original}.yaml").read_text())["fixed"]
            copy = yaml.safe_load((STUDIES / f"{original}_digits.yaml").read_text())["fixed"]
            for key in ("model", "optimizer", "init", "depth", "width"):
                assert copy.get(key) == base.get(key), (original, key)


def test_a_view_leaves_the_original_tables_alone():
    b = Builder()
    _residual(b, "residual", resmlp=0.8)
    _residual(b, "residual_digits", resmlp=0.0)
    t = claims.Tables(*b.tables())
    view = claims.replica_tables(t, [claims.CLAIMS[10]], "digits")
    assert set(view.runs["study"]) == {"residual"} and len(view.runs) == 8
    assert set(t.runs["study"]) == {"residual", "residual_digits"}
    assert np.allclose(sorted(view.select("residual", model="resmlp")["test_metric"]),
                       [0.0, 0.01, 0.02, 0.03])

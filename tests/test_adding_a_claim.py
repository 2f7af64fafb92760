"""Adding a claim is one catalog module and its id in a study's ``claims:``: nothing else.

In a scratch copy of the repository (``scratch_repo``) the test writes exactly those two
things and checks that the registry finds the claim, that the README's generated claim
index lists it, and that the ledger command computes its verdict from a small synthetic
summary, against a t interval computed here with scipy.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scratch_repo import ScratchRepo
from test_claims import Builder

from gradatlas.analysis.claims import CLAIMS

pytestmark = pytest.mark.unit

STUDY = "silu_relu"
TOY_TITLE = "Toy: ReLU learns above a bar"
TOY_MODULE = '''"""A toy claim: the mean test accuracy of ReLU in {study} lies above a bar."""

from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import by_seed, mlp_runs, outcome
from gradatlas.analysis.claims.parts import seed_part
from gradatlas.analysis.claims.thresholds import Threshold
from gradatlas.analysis.claims.verdicts import above

STUDY = "{study}"
BAR = Threshold("BAR", 0.5, "test accuracy above which ReLU learns", 0.1, 0.9)
THRESHOLDS = (BAR,)


def compute(t, th):
    relu = mlp_runs(t, STUDY, activation="relu")
    return [seed_part("relu test accuracy", by_seed(relu, outcome(relu)), above(th.BAR))]


CLAIM = Claim({claim_id}, "{title}", "ReLU learns.", (STUDY,), "relu test accuracy",
              rule_text(f"Supported if the CI lies above {{BAR:g}}."), compute, THRESHOLDS)
'''


TOY_ACCURACIES = [0.81, 0.78, 0.85, 0.80]


def write_toy_summary(repo: ScratchRepo, accuracies: list[float]):
    """A synthetic summary of ReLU runs of ``STUDY`` (one per seed) under ``results/toy``; returns its root."""
    b = Builder()
    for seed, accuracy in enumerate(accuracies):
        b.run(STUDY, seed, activation="relu", test_metric=accuracy)
    root = repo.path("results/toy")
    (root / "summary").mkdir(parents=True)
    for name, frame in zip(("runs", "layers", "timesteps"), b.tables()):
        frame.to_parquet(root / "summary" / f"{name}.parquet")
    return root


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> tuple[ScratchRepo, int]:
    """The scratch copy with the toy claim added the documented way: the module and one ``claims:`` id."""
    repo = ScratchRepo(tmp_path_factory.mktemp("repo"))
    claim_id = max(CLAIMS) + 1
    repo.write("src/gradatlas/analysis/claims/catalog/toy_relu_bar.py",
               TOY_MODULE.format(study=STUDY, claim_id=claim_id, title=TOY_TITLE))
    repo.list_claim(STUDY, claim_id)
    return repo, claim_id


def test_the_registry_finds_the_new_claim(scratch):
    repo, claim_id = scratch
    done = repo.run("-c", "import json; from gradatlas.analysis.claims import CLAIMS; "
                          "print(json.dumps({i: [c.title, list(c.studies), c.rule] for i, c in CLAIMS.items()}))")
    found = {int(k): v for k, v in json.loads(done.stdout).items()}
    assert sorted(found) == sorted([*CLAIMS, claim_id])
    title, studies, rule = found[claim_id]
    assert (title, studies) == (TOY_TITLE, [STUDY])
    assert rule.startswith("Supported if the CI lies above 0.5.")  # the prose written from BAR


def test_the_readme_claim_index_lists_the_new_claim(scratch):
    repo, claim_id = scratch
    assert repo.run("-m", "gradatlas.analysis.claim_index", "--check", check=False).returncode == 1  # stale
    repo.run("-m", "gradatlas.analysis.claim_index")
    rows = [line for line in repo.path("README.md").read_text().splitlines() if line.startswith(f"| {claim_id} |")]
    assert len(rows) == 1 and f"| {TOY_TITLE} | `{STUDY}` |" in rows[0]
    assert repo.run("-m", "gradatlas.analysis.claim_index", "--check", check=False).returncode == 0


def test_the_ledger_computes_the_new_claim(scratch):
    repo, claim_id = scratch
    root = write_toy_summary(repo, TOY_ACCURACIES)
    accuracies = TOY_ACCURACIES
    repo.run("-m", "gradatlas.analysis", "ledger", "--root", str(root), "--studies", STUDY)
    ledger = pd.read_parquet(root / "analysis/claims.parquet").set_index("claim")
    assert sorted(ledger.index) == sorted([*CLAIMS, claim_id])
    row = ledger.loc[claim_id]
    low, high = stats.t.interval(0.95, len(accuracies) - 1, loc=np.mean(accuracies), scale=stats.sem(accuracies))
    assert row["value"] == pytest.approx(np.mean(accuracies))
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert row["verdict"] == "supported" and row["n"] == len(accuracies)
    assert f"& {TOY_TITLE}" in (root / "tables/claims.tex").read_text().replace(r"\raggedright ", "")

"""Extending gradatlas the documented way (docs/design.md, "Extending gradatlas"): in one scratch
copy of the repository, a toy probe quantity, a toy figure that draws it and a toy claim are
added by writing only the files the design names, and the registries, the README's claim
index, the ledger, the figure list of the workflow and a trained run's record pick them up.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from figure_helpers import add_toy_figure, draws_toy, registry_view, workflow_figures
from scratch_repo import ScratchRepo
from test_adding_a_claim import STUDY, TOY_ACCURACIES, TOY_MODULE, TOY_TITLE, write_toy_summary

from gradatlas.analysis.claims import CLAIMS

pytestmark = pytest.mark.workflow  # the figure list is read from a dry run of the copy's workflow

ENTRIES = ("src", "Snakefile", "rules", "conf", "environment.yml", "profiles", "paper", "report",
           "pyproject.toml", "README.md")
QUANTITY = "toy_abs_mean"
QUANTITY_MODULE = '''"""toy_abs_mean: the mean absolute activation of a layer."""

from gradatlas.run.probes.quantity import LayerQuantity, register


@register
class ToyAbsMean(LayerQuantity):
    """Mean of |activation output| over examples and units."""

    name = "toy_abs_mean"
    order = 35

    def measure_layer(self, layer, step):
        return None if layer.act_output is None else layer.act_output.detach().abs().mean()
'''
TINY_RUN = ("model=mlp", "model.depth=3", "model.width=8", "model.activation=tanh", "train.batch_size=32",
            "train.max_steps=3", "device=cpu", "data.n_train=128", "data.n_test=64")


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory):
    """The scratch copy with the three toys added; returns (repo, claim id, toy figure)."""
    repo = ScratchRepo(tmp_path_factory.mktemp("extended") / "repo", entries=ENTRIES)
    repo.write(f"src/gradatlas/run/probes/quantities/{QUANTITY}.py", QUANTITY_MODULE)
    toy_figure = add_toy_figure(repo.root, name="toy_abs_mean_vs_layer", study=STUDY, quantity=QUANTITY)
    claim_id = max(CLAIMS) + 1
    repo.write("src/gradatlas/analysis/claims/catalog/toy_relu_bar.py",
               TOY_MODULE.format(study=STUDY, claim_id=claim_id, title=TOY_TITLE))
    repo.list_claim(STUDY, claim_id)
    return repo, claim_id, toy_figure


def test_a_run_records_the_new_quantity(extended, tmp_path):
    repo, _, _ = extended
    names = repo.run("-c", "from gradatlas.run.probes.quantity import registered; "
                           "print(' '.join(q.name for q in registered()))").stdout.split()
    assert QUANTITY in names
    out = tmp_path / "run"
    repo.run("-m", "gradatlas.run.train", *TINY_RUN, f"out={out}")
    layers = pd.read_parquet(out / "layers.parquet")
    wide = layers[layers["quantity"].isin([QUANTITY, "act_mean"])].pivot_table(
        index=["step", "layer"], columns="quantity", values="value")
    assert len(wide) > 0 and wide[QUANTITY].notna().all()
    # An independent bound: the mean of |a| is at least |mean of a| (and tanh keeps it below 1).
    assert (wide[QUANTITY] >= wide["act_mean"].abs() - 1e-7).all() and (wide[QUANTITY] < 1).all()
    assert set(wide.index.get_level_values("step")) == set(layers.loc[layers["quantity"] == "act_mean", "step"])


def test_the_figure_list_and_the_claim_index_pick_up_the_new_figure_and_claim(extended):
    repo, claim_id, toy = extended
    view = registry_view(repo.root)
    assert toy.name in view["names"] and view["studies"][toy.name] == [STUDY] and not view["stale"]
    assert toy.name in workflow_figures(repo.root)
    assert draws_toy(repo.root, toy) > 0
    repo.run("-m", "gradatlas.analysis.claim_index")
    rows = [line for line in repo.path("README.md").read_text().splitlines() if line.startswith(f"| {claim_id} |")]
    assert len(rows) == 1 and TOY_TITLE in rows[0] and f"`{toy.name}`" in rows[0]


def test_the_ledger_computes_the_new_claim(extended):
    repo, claim_id, _ = extended
    root = write_toy_summary(repo, TOY_ACCURACIES)
    repo.run("-m", "gradatlas.analysis", "ledger", "--root", str(root), "--studies", STUDY)
    ledger = pd.read_parquet(root / "analysis/claims.parquet").set_index("claim")
    assert sorted(ledger.index) == sorted([*CLAIMS, claim_id])
    assert ledger.loc[claim_id, "verdict"] == "supported"
    counts = json.loads(repo.run("-c", "import json; from gradatlas.analysis.claims import CLAIMS; "
                                       "print(json.dumps(len(CLAIMS)))").stdout)
    assert counts == len(CLAIMS) + 1

"""Figures against the workflow: every figure draws data on the real smoke summary, and a new
figure written as docs/design.md says reaches the registry, the report captions and the
workflow's figure list."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from figure_helpers import add_toy_figure, draws_toy, plotted_points, registry_view, scratch_copy, workflow_figures

from gradatlas.analysis import theory
from gradatlas.analysis.figures import FIGURES, output
from gradatlas.core import layout

pytestmark = pytest.mark.workflow

# Figures with nothing to draw at the smoke scale, each with the reason. Every figure draws data
# there today; a figure listed here must draw nothing (the test checks), so the list stays true.
EMPTY_AT_SMOKE: dict[str, str] = {}


@pytest.fixture(scope="module")
def smoke_tables(smoke):
    paths = layout.ScalePaths(smoke / "results", "smoke")
    runs, layers, timesteps = layout.read_summary(paths)
    steps = layout.read_steps(paths)
    # The threshold-sensitivity figure draws the sensitivity part's table and the forest plot the
    # ledger's claims table, as the workflow's figures step reads them (``analysis.write_figures``).
    return {"runs": runs, "layers": layers, "timesteps": timesteps, "steps": steps,
            "theory": theory.theory_table(runs, layers, timesteps),
            "sensitivity": pd.read_parquet(paths.analysis("sensitivity")),
            "claims": pd.read_parquet(paths.analysis("claims"))}


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_draws_data_on_the_smoke_summary(name, smoke_tables):
    # As the workflow draws it (output.draw): at its print width, a study without rows giving
    # the no-data figure, which plots nothing.
    fig = output.draw(name, **smoke_tables)
    assert fig.get_figwidth() == pytest.approx(FIGURES[name].width)
    fig.savefig(io.BytesIO(), format="png", dpi=40)  # layout and every artist render
    points = plotted_points(fig)
    if name in EMPTY_AT_SMOKE:
        assert points == 0, f"{name} draws data at the smoke scale now: remove it from EMPTY_AT_SMOKE"
    else:
        assert points > 0, f"{name} plots no data on the smoke summary"


def test_a_toy_figure_reaches_the_registry_the_captions_and_the_workflow(tmp_path):
    repo = scratch_copy(tmp_path)
    before = registry_view(repo)
    assert before["stale"] == [] and before["heavy"] == []
    toy = add_toy_figure(repo)
    after = registry_view(repo)
    # Registered last in its section, everything else as before; no plotting library on import.
    units = [n for n in before["names"] if before["sections"][n] == toy.section]
    assert after["names"] == [*before["names"][:before["names"].index(units[-1]) + 1], toy.name,
                              *before["names"][before["names"].index(units[-1]) + 1:]]
    assert after["studies"][toy.name] == [toy.study] and after["heavy"] == []
    # Its report caption was generated from the spec, and the committed captions are current.
    assert after["stale"] == [] and after["report_dir"] == str(repo / "report" / "figures")
    assert (repo / "report" / "figures" / f"{toy.name}.rst").read_text() == toy.report + "\n"
    # The workflow's parse reads the copy's registry: the figures rule draws the toy.
    assert workflow_figures(repo) == set(after["names"])
    assert draws_toy(repo, toy) == 2  # two layers, each the mean over two runs

"""Residual connections: accuracy against depth, plain against residual MLP (study residual)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from gradatlas.analysis.figures import levels, select
from gradatlas.analysis.figures.spec import SINGLE_COLUMN, NoData, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def residual_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``residual_vs_plain``: the activations drawn and the diverged runs."""
    res_runs = levels.study_rows(runs, "residual")
    return (
        "Test accuracy against depth for the plain and the residual MLP"
        + (f" ({levels.listing(levels.order('activation', res_runs['activation'].unique()))})"
           if not res_runs.empty else "")
        + ", mean over seeds with band min--max; dashed: chance."
        + (levels.diverged_text(res_runs) if not res_runs.empty else ""))


@figure(width=SINGLE_COLUMN, studies=("residual",), caption=residual_caption,
        report="Test accuracy against depth for plain and residual MLPs (study residual); diverged runs have no "
               "accuracy and are marks, not part of the means.")
def residual_vs_plain(runs: pd.DataFrame, *, study: str = "residual", max_cols: int = 2,
                      width: Optional[float] = None) -> Figure:
    """Test accuracy against depth (log x) for the plain and the residual MLP, one panel per activation.

    Lines are the mean over seeds (band min..max); the dashed line is the chance level.
    """
    from gradatlas.analysis.figures import plot, style

    part = select.rows(runs, "residual_vs_plain", study=study, columns=("model", "activation", "depth", "test_metric"))
    part = part[np.isfinite(part["test_metric"].astype(float))]
    if part.empty:
        raise NoData(f"residual_vs_plain: no finite test_metric in study {study!r}")
    acts = levels.order("activation", part["activation"])
    models = levels.order("model", part["model"])
    fig, grid, panels = style.wrapped(len(acts), max_cols, width, row_height=1.8)
    for index, (ax, act) in enumerate(zip(panels, acts)):
        panel = part[part["activation"] == act]
        for model in models:
            plot.mean_line(ax, panel[panel["model"] == model], "depth", "test_metric",
                           label=levels.MODEL_LABELS.get(model, str(model)), color=style.color("model", model, models))
        if "chance" in panel and np.isfinite(panel["chance"].mean()):
            ax.axhline(panel["chance"].mean(), color="0.4", linestyle="--", linewidth=0.8, label="_chance")
        plot.log_ticks_at(ax, part["depth"].unique())
        ax.set_title(str(act))
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel(levels.metric_label(part) if index % max_cols == 0 else "")
    style.share(grid, y=True)
    style.fig_legend(fig, [style.line_handle(levels.MODEL_LABELS.get(m, str(m)), style.color("model", m, models),
                                             marker="o") for m in models]
                     + [style.line_handle("chance", "0.4", "--")])
    return fig

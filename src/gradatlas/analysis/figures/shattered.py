"""Shattered gradients: the correlation of input gradients at nearby inputs against depth,
plain against residual MLP, with the mean-field curves (study shattered, claim 21)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from gradatlas.analysis.figures import levels
from gradatlas.analysis.figures.spec import SINGLE_COLUMN, NoData, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STUDY = "shattered"


def shattered_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``gradient_correlation_vs_depth``: the seeds and depths drawn."""
    from gradatlas.analysis.claims.catalog.shattered import SEPARATION

    part = levels.study_rows(runs, STUDY)
    seeds = f"{part['seed'].nunique()} seeds" if not part.empty else "seeds"
    return ("Correlation of the input gradients at two inputs $\\pi/16$ apart (points "
            f"{SEPARATION} apart on an arc through input space) at initialization against depth, zero-bias ReLU "
            f"networks with He weights: mean over {seeds} (band min--max), and the mean-field curves (dashed; "
            "plain: $\\prod_l (1-\\theta_l/\\pi)$ with the arc-cosine kernel, residual: its residual analogue).")


@figure(width=SINGLE_COLUMN, studies=(STUDY,), caption=shattered_caption,
        report="Correlation of input gradients at nearby inputs (pi/16 apart) against depth at initialization, plain "
               "and residual ReLU MLPs (study shattered): means over seeds with min-max bands, mean-field curves "
               "dashed.")
def gradient_correlation_vs_depth(runs: pd.DataFrame, layers: pd.DataFrame, *, study: str = STUDY,
                                  width: Optional[float] = SINGLE_COLUMN) -> Figure:
    """Mean gradient correlation at ``SEPARATION`` against depth per model (log y), theory dashed."""
    from gradatlas.analysis import theory
    from gradatlas.analysis.claims.catalog.shattered import SEPARATION
    from gradatlas.analysis.figures import plot, style
    from gradatlas.analysis.theory.shattered import GRADIENT_CORRELATION, correlation_rows
    from gradatlas.run.probes.arc import ARC_STEP

    chosen = levels.study_rows(runs, study)
    if chosen.empty or layers is None or len(layers) == 0:
        raise NoData(f"gradient_correlation_vs_depth: no runs of study {study!r}")
    part = layers[(layers["quantity"].astype(str) == "input_grad_corr") & (layers["layer"] == SEPARATION)]
    part = part[part["run"].astype(str).isin(chosen["run"].astype(str))]
    rows = correlation_rows(chosen, theory.split_layers(part[list(theory.LAYER_KEYS)]), SEPARATION)
    if rows.empty:
        raise NoData(f"gradient_correlation_vs_depth: no input_grad_corr in study {study!r}")
    models = levels.order("model", rows["model"])
    fig, axes = style.figure(1, 1, width)
    ax = axes[0, 0]
    dense = np.arange(1, int(rows["depth"].max()) + 1)
    for model in models:
        color = style.color("model", model, models)
        mine = rows[rows["model"] == model]
        plot.mean_line(ax, mine, "depth", "correlation", label=levels.MODEL_LABELS.get(model, str(model)), color=color)
        law = GRADIENT_CORRELATION[model]
        sigma_w2 = float(mine["sigma_w2"].median())
        ax.plot(dense, [law(SEPARATION * ARC_STEP, int(d), sigma_w2) for d in dense], color=color, linestyle="--",
                linewidth=0.9, label=f"_{model} theory")
    ax.set_yscale("log")
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("input-gradient correlation")
    style.fig_legend(fig, [style.line_handle(levels.MODEL_LABELS.get(m, str(m)), style.color("model", m, models),
                                             marker="o") for m in models]
                     + [style.line_handle("mean field", "0.4", "--")])
    return fig

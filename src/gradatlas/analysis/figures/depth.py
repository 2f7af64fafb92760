"""Depth: the backpropagated gradient norm layer by layer, and what trains (study depth_activation_init)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from gradatlas.analysis.figures import levels, select
from gradatlas.analysis.figures.spec import DOUBLE_COLUMN, NoData, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STUDY = "depth_activation_init"


def backprop_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``backprop_norm_vs_layer``: the depth drawn and the diverged runs."""
    depth_runs = levels.study_rows(runs, STUDY)
    depth = levels.fmt(depth_runs["depth"].max()) if not depth_runs.empty else "--"
    drawn = depth_runs[depth_runs["depth"] == depth_runs["depth"].max()] if not depth_runs.empty else depth_runs
    return (
        r"Backpropagated gradient norm $\lVert\partial\ell/\partial z_l\rVert$ against layer $l$ (0 = input "
        f"side) at initialization and at the last probed step, per activation and initializer (study "
        f"\\texttt{{depth\\_activation\\_init}}, depth {depth}; mean over seeds, band min--max). Log scale; "
        "the initializers are coloured by the weight variance they give a square layer (LeCun, Xavier and "
        "orthogonal: $\\sigma_w^2 = 1$; He: $\\sigma_w^2 = 2$; PyTorch's default: $1/3$), told apart by line style."
        + (levels.diverged_text(drawn, marked=False) if not drawn.empty else ""))


@figure(width=DOUBLE_COLUMN, studies=(STUDY,), caption=backprop_caption,
        report="Backpropagated gradient norm against layer (0 = input side) at initialization and at the last "
               "probed step, per activation and initializer, for the deepest MLPs of study "
               "depth_activation_init. Log scale; diverged runs are marks, not part of the means.")
def backprop_norm_vs_layer(layers: pd.DataFrame, *, study: str = STUDY,
                           depth: Optional[float] = None, quantity: str = "backprop_norm",
                           max_cols: int = 4, width: Optional[float] = None) -> Figure:
    """The backpropagated gradient norm against layer (0 = input side), log y.

    One column per activation (at most ``max_cols``, then a further pair of rows): the upper
    row at initialization (step 0), the lower at each run's last probed step; one line per
    initializer (mean over seeds, band min..max), for the networks of ``depth`` (default: the
    deepest in the study). The head (output layer) is the last layer.
    """
    from gradatlas.analysis.figures import plot, style

    part = select.rows(layers, "backprop_norm_vs_layer", study=study, quantity=quantity,
                       columns=("run", "step", "layer", "activation", "init", "depth"))
    depth = part["depth"].max() if depth is None else depth
    part = part[part["depth"] == depth]
    if part.empty:
        raise NoData(f"backprop_norm_vs_layer: no rows for depth {depth} in study {study!r}")
    acts = levels.order("activation", part["activation"])
    inits = levels.order("init", part["init"])
    first = part[part["step"] == 0]
    last = select.last_step_rows(part)
    last = last[last["step"] > 0]
    ncols = min(len(acts), max_cols)
    fig, axes = style.figure(2 * math.ceil(len(acts) / ncols), ncols, width)
    for ax in axes.flat:
        ax.set_axis_off()
    for index, act in enumerate(acts):
        block, col = divmod(index, ncols)
        for offset, (rows, when) in enumerate([(first, "initialization"), (last, "last probed step")]):
            ax = axes[2 * block + offset, col]
            ax.set_axis_on()
            panel = rows[rows["activation"] == act]
            for init in inits:
                plot.mean_line(ax, panel[panel["init"] == init], "layer", "value", label=str(init),
                               color=style.color("init", init, inits), linestyle=style.linestyle("init", init),
                               marks=False)
            if panel.empty:
                style.note(ax, "no rows")
            ax.set_title(f"{act}, {when}", fontsize=7)
            ax.set_xlabel("layer (0 = input)" if offset == 1 else "")
            ax.set_ylabel(f"{levels.quantity_label(quantity)}\n({when})" if col == 0 else "")
            ax.set_yscale("log")
    style.share(axes, x=True, y=True)
    style.fig_legend(fig, [style.line_handle(str(i), style.color("init", i, inits), style.linestyle("init", i),
                                             marker="o") for i in inits],
                     title=f"initializer (depth {levels.fmt(depth)}; colour: the weight variance it gives)")
    return fig


def heatmap_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``accuracy_heatmap``: the depths drawn and the diverged runs."""
    depth_runs = levels.study_rows(runs, STUDY)
    depths = sorted(depth_runs["depth"].unique()) if not depth_runs.empty else []
    return (
        "Final test accuracy (mean over the seeds that did not diverge) by activation and initializer, "
        + (f"one panel per depth ({levels.listing(depths)})." if depths else "no runs at this scale.")
        + (levels.diverged_text(depth_runs) if not depth_runs.empty else ""))


@figure(width=DOUBLE_COLUMN, studies=(STUDY,), caption=heatmap_caption,
        report="Final test accuracy (mean over the seeds that did not diverge) by activation and initializer, "
               "one panel per depth (study depth_activation_init).")
def accuracy_heatmap(runs: pd.DataFrame, *, study: str = STUDY, value: str = "test_metric",
                     annotate: Optional[bool] = None, ncols: int = 3, width: Optional[float] = None) -> Figure:
    """The final test metric over activation (rows) x initializer (columns), one panel per depth.

    Each cell is the mean of ``value`` over the seeds of that cell with a finite value
    (diverged runs without a test metric are left out); an empty cell means no such run.
    The colour scale runs from chance (accuracy; the data's lowest cell for other metrics) to
    the best cell, every cell printed; the panel title gives the chance level from the runs'
    ``chance`` column.
    """
    import seaborn as sns

    from gradatlas.analysis.figures import style

    part = select.rows(runs, "accuracy_heatmap", study=study, columns=("activation", "init", "depth", value))
    part = select.not_diverged(part)
    part = part[np.isfinite(part[value].astype(float))]
    if part.empty:
        raise NoData(f"accuracy_heatmap: no finite {value} in study {study!r}")
    acts = levels.order("activation", part["activation"])
    inits = levels.order("init", part["init"])
    depths = sorted(part["depth"].unique())
    table = part.pivot_table(index=["depth", "activation"], columns="init", values=value, aggfunc="mean")
    accuracy = levels.is_accuracy(part)
    chance = part["chance"].mean() if "chance" in part else np.nan
    # The colour scale spans what the cells hold, from chance (accuracy) to the best cell: a 0-1
    # scale would spend most of its colours on accuracies no cell reaches.
    low = chance if accuracy and np.isfinite(chance) else float(np.nanmin(table.to_numpy()))
    vmin, vmax = min(low, float(np.nanmin(table.to_numpy()))), float(np.nanmax(table.to_numpy()))
    if annotate is None:
        annotate = True  # every cell's number: the colour alone cannot be read to two digits
    ncols = min(ncols, len(depths))
    nrows = math.ceil(len(depths) / ncols)
    fig, axes = style.figure(nrows, ncols, width, row_height=0.2 * len(acts) + 0.9, sharex=False, sharey=False)
    label = levels.metric_label(part)
    for index, depth in enumerate(depths):
        ax = axes.flat[index]
        grid = table.loc[depth].reindex(index=acts, columns=inits)
        sns.heatmap(grid, ax=ax, vmin=vmin, vmax=vmax, cmap=style.HEATMAP_CMAP, annot=annotate, fmt=".2f",
                    annot_kws={"fontsize": 5}, cbar=False, linewidths=0.5, linecolor="white", square=False)
        title = f"depth {levels.fmt(depth)}"
        if np.isfinite(chance):
            title += f" (chance {chance:.2g})"
        ax.set_title(title)
        ax.set_xlabel("initializer")
        ax.set_ylabel("activation" if index % ncols == 0 else "")
        ax.tick_params(axis="both", labelsize=6)
        for tick in ax.get_xticklabels():
            tick.set(rotation=45, ha="right", rotation_mode="anchor")
        ax.tick_params(axis="y", rotation=0)
    for ax in axes.flat[len(depths):]:
        ax.set_axis_off()
    # One colour bar for all panels (they share the scale).
    fig.colorbar(axes.flat[0].collections[0], ax=list(axes.flat[:len(depths)]), label=label, shrink=0.9,
                 aspect=30)
    return fig

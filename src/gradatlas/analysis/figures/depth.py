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


# The initializers of the layer x step heatmaps: the textbook's pair, PyTorch's default and He.
HEATMAP_INITS = ("default", "he_normal")


def backprop_over_training_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``backprop_over_training``: the depth and seeds drawn."""
    part = levels.study_rows(runs, STUDY)
    depth = levels.fmt(part["depth"].max()) if not part.empty else "--"
    seeds = f"{part['seed'].nunique()} seeds" if not part.empty else "seeds"
    return ("The backpropagated norm over layers and training, study \\texttt{depth\\_activation\\_init} at depth "
            f"{depth}: per activation (columns) and initializer (rows: PyTorch's default, He normal), "
            r"$\log_{10}\lVert\partial\ell/\partial z_l\rVert$ of each hidden layer (y, input side at the bottom) at "
            f"every probed step (x, logarithmic: step + 1), the mean over {seeds} that did not diverge; one colour "
            "scale for all panels.")


@figure(width=DOUBLE_COLUMN, studies=(STUDY,), caption=backprop_over_training_caption,
        report="Layer x training-step heatmaps of the backpropagated norm (log10) per activation, PyTorch's default "
               "and He initialization, deepest net of study depth_activation_init.")
def backprop_over_training(runs: pd.DataFrame, layers: pd.DataFrame, *, study: str = STUDY,
                           width: Optional[float] = DOUBLE_COLUMN) -> Figure:
    """Per activation and initializer of ``HEATMAP_INITS``: log10 backprop norm over (step, layer)."""
    import matplotlib as mpl

    from gradatlas.analysis.figures import style

    chosen = levels.study_rows(runs, study)
    if chosen.empty or layers is None or len(layers) == 0:
        raise NoData(f"backprop_over_training: no runs of study {study!r}")
    chosen = chosen[(chosen["depth"] == chosen["depth"].max()) & chosen["init"].isin(HEATMAP_INITS)]
    chosen = chosen[chosen["status"].astype(str) != "diverged"] if "status" in chosen else chosen
    frame = select.hidden_rows_of(layers, chosen, ("activation", "init"), ("backprop_norm",))
    if frame.empty:
        raise NoData(f"backprop_over_training: no backprop norms in study {study!r}")
    values = frame["value"].astype(float)
    frame = frame.assign(log_norm=np.log10(values.where(values > 0)))
    acts = levels.order("activation", frame["activation"])
    inits = [i for i in HEATMAP_INITS if (frame["init"] == i).any()]
    grid = frame.groupby(["init", "activation", "layer", "step"])["log_norm"].mean()
    finite = grid[np.isfinite(grid)]
    norm = mpl.colors.Normalize(vmin=float(finite.min()), vmax=float(finite.max()))
    fig, axes = style.figure(len(inits), len(acts), width, row_height=1.25, extra_height=0.5)
    mesh = None
    for r, init in enumerate(inits):
        for c, act in enumerate(acts):
            ax = axes[r, c]
            if (init, act) not in grid.index.droplevel([2, 3]):
                style.note(ax, "no runs")
                continue
            panel = grid.loc[(init, act)].unstack("step")
            steps = panel.columns.to_numpy(dtype=float) + 1.0
            mesh = ax.pcolormesh(_edges(steps), np.arange(len(panel.index) + 1) - 0.5, panel.to_numpy(),
                                 norm=norm, cmap=style.HEATMAP_CMAP, shading="flat")
            ax.set_xscale("log")
            ax.set_title(f"{act}" if r == 0 else "", fontsize=7)
            ax.set_ylabel(f"{init}\nlayer" if c == 0 else "")
            ax.set_xlabel("step + 1" if r == len(inits) - 1 else "")
            ax.tick_params(labelsize=5.5)
            if c:
                ax.tick_params(labelleft=False)
    if mesh is not None:
        fig.colorbar(mesh, ax=list(axes.flat), label=r"$\log_{10}\|\partial\ell/\partial z_l\|$",
                     shrink=0.9, aspect=30)
    return fig


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges around positive centres on a log axis (geometric midpoints, the ends mirrored)."""
    logs = np.log(centres)
    mids = (logs[1:] + logs[:-1]) / 2 if len(logs) > 1 else np.array([])
    first = logs[0] - (mids[0] - logs[0] if len(mids) else 0.5)
    last = logs[-1] + (logs[-1] - mids[-1] if len(mids) else 0.5)
    return np.exp(np.concatenate([[first], mids, [last]]))

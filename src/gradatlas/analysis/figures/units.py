"""What units do: die (study dying_relu), learn a PReLU slope, self-normalize (study selu)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from gradatlas.analysis.figures import levels, select
from gradatlas.analysis.figures.spec import SINGLE_COLUMN, NoData, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEAD_VIEWS = (("dead_frac", "first", "dead at initialization"),
              ("died_frac", "last", "died in training (last probe)"))


def dying_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of study ``dying_relu``."""
    return levels.study_rows(runs, "dying_relu")


def dead_units_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``dead_units_vs_lr``: the views the summary holds, the diverged runs."""
    dying = levels.study_rows(layers, "dying_relu")
    has_died = not dying.empty and (dying["quantity"].astype(str) == "died_frac").any()
    dying = dying_runs(runs)
    return (
        "Share of dead units (whose derivative stays below a stated share of its maximum on every example of "
        "the fixed probe set) against the learning rate, "
        "per activation and bias initialization (study \\texttt{dying\\_relu})"
        + ("; top: dead at initialization, bottom: died during training." if has_died else
           "; dead units at the last probe (this summary has no died\\_frac probe).")
        + (levels.diverged_text(dying) if not dying.empty else ""))


# Per activation of a panel: its marker, and the factor by which its points are moved apart along
# the log learning-rate axis.
MARKERS = ("o", "s", "^", "D", "v")
DODGE = 1.12


@figure(width=SINGLE_COLUMN, studies=("dying_relu",), caption=dead_units_caption,
        report="Share of dead units (units whose derivative stays below a stated share of its maximum on every "
               "example of the fixed probe set) against the learning rate, per activation and bias "
               "initialization (study dying_relu): dead at initialization apart from died during training, "
               "where the summary holds both. Diverged runs are marks, not part of the means.")
def dead_units_vs_lr(layers: pd.DataFrame, *, study: str = "dying_relu", max_cols: int = 2,
                     width: Optional[float] = None) -> Figure:
    """Share of dead units against the learning rate (log x): one panel per bias init and view.

    The views (``DEAD_VIEWS``, those the data holds): ``dead_frac`` at step 0 (dead at
    initialization, e.g. from a negative bias) and ``died_frac`` at the last probe (died during
    training). Without ``died_frac`` (older summaries), ``dead_frac`` at the last probe. A
    run's value is the mean over its hidden layers; lines per activation are the mean over
    seeds (band min..max), diverged runs drawn as marks.
    """
    from gradatlas.analysis.figures import plot, style

    part = select.rows(layers, "dead_units_vs_lr", study=study, quantity=("dead_frac", "died_frac"),
                       columns=("run", "step", "activation", "lr", "bias"))
    views = [v for v in DEAD_VIEWS if (part["quantity"] == v[0]).any()]
    if len(views) == 1 and views[0][0] == "dead_frac":
        views = [("dead_frac", "last", "dead units (last probe)")]
    extra = {"status": ("status", "first")} if "status" in part else {}
    per_view = []
    for quantity, when, title in views:
        rows = part[part["quantity"] == quantity]
        rows = rows[rows["step"] == 0] if when == "first" else select.last_step_rows(rows)
        per_run = rows.groupby("run", as_index=False).agg(
            value=("value", "mean"), activation=("activation", "first"), lr=("lr", "first"),
            bias=("bias", "first"), **extra)
        per_view.append((title, per_run))
    every = pd.concat([v[1] for v in per_view])
    acts = levels.order("activation", every["activation"])
    biases = levels.order("bias", every["bias"])
    cols = min(len(biases), max_cols)
    fig, grid = style.figure(len(per_view) * math.ceil(len(biases) / cols), cols, width, row_height=1.6)
    for ax in grid.flat:
        ax.set_axis_off()
    for v, (title, per_run) in enumerate(per_view):
        for index, bias in enumerate(biases):
            block, col = divmod(index, cols)
            ax = grid[len(per_view) * block + v, col]
            ax.set_axis_on()
            panel = per_run[per_run["bias"].isna()] if levels.missing(bias) else per_run[per_run["bias"] == bias]
            for k, act in enumerate(acts):
                # Dodged along the log axis and marked apart: two activations with equal shares
                # (ReLU and leaky ReLU at zero) would otherwise draw one line over the other.
                mine = panel[panel["activation"] == act]
                mine = mine.assign(lr=mine["lr"].astype(float) * DODGE ** (k - (len(acts) - 1) / 2))
                plot.mean_line(ax, mine, "lr", "value", label=str(act), color=style.color("activation", act, acts),
                               marker=MARKERS[k % len(MARKERS)])
            plot.log_ticks_at(ax, every["lr"].unique())
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"bias init {levels.fmt(bias)}:\n{title}", fontsize=7)
            ax.set_xlabel("learning rate")
            ax.set_ylabel("share of units\n(mean over layers)" if col == 0 else "")
    style.fig_legend(fig, [style.line_handle(str(a), style.color("activation", a, acts), marker=MARKERS[k % len(MARKERS)])
                           for k, a in enumerate(acts)]
                     + [style.line_handle("diverged run", "0.3", "none", "x")], title="activation")
    return fig


def prelu_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``prelu_slope``: the diverged PReLU runs."""
    dying = dying_runs(runs)
    prelu_runs = dying[dying["activation"].astype(str) == "prelu"] if not dying.empty else dying
    return (
        "PReLU's learned negative slope over training, per layer (mean over seeds, band min--max)."
        + (levels.diverged_text(prelu_runs) if not prelu_runs.empty else ""))


@figure(width=SINGLE_COLUMN, studies=("dying_relu",), caption=prelu_caption,
        report="PReLU's learned negative slope over training, per layer (study dying_relu); diverged runs are "
               "marks, not part of the means.")
def prelu_slope(layers: pd.DataFrame, *, study: Optional[str] = "dying_relu", lr: Optional[float] = None,
                max_cols: int = 2, width: Optional[float] = None) -> Figure:
    """PReLU's learned negative slope against the training step (symlog x), one line per layer.

    One panel per bias init, at learning rate ``lr`` (default: the largest in the data, where
    units die most); mean over seeds (band min..max). Layers are coloured from input
    (dark) to output (light).
    """
    from matplotlib.ticker import FuncFormatter

    from gradatlas.analysis.figures import plot, style

    part = select.rows(layers, "prelu_slope", study=study, quantity="prelu_slope", columns=("step", "layer"))
    if "lr" in part and part["lr"].notna().any():
        lr = part["lr"].max() if lr is None else lr
        part = part[part["lr"] == lr]
        if part.empty:
            raise NoData(f"prelu_slope: no rows at lr {lr}")
    biases = levels.order("bias", part["bias"]) if "bias" in part else [np.nan]
    layer_levels = sorted(part["layer"].unique())
    colors = style.sequential(layer_levels)
    fig, grid, panels = style.wrapped(len(biases), max_cols, width, row_height=1.8)
    for index, (ax, bias) in enumerate(zip(panels, biases)):
        if "bias" not in part:
            panel = part
        else:
            panel = part[part["bias"].isna()] if levels.missing(bias) else part[part["bias"] == bias]
        for layer in layer_levels:
            plot.mean_line(ax, panel[panel["layer"] == layer], "step", "value", label=f"layer {layer}",
                           color=colors[layer], marker="o")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.xaxis.set_major_formatter(FuncFormatter(style.tick_label))
        title = f"bias init {levels.fmt(bias)}"
        if lr is not None:
            title += f", lr {levels.fmt(lr)}"
        ax.set_title(title)
        ax.set_xlabel("training step")
        ax.set_ylabel("learned PReLU slope" if index % max_cols == 0 else "")
    style.share(grid, y=True)
    style.fig_legend(fig, [style.line_handle(f"layer {layer}", colors[layer], marker="o") for layer in layer_levels])
    return fig


def selu_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``selu_statistics``: the activations drawn."""
    selu_runs = levels.study_rows(runs, "selu")
    return (
        "Activation mean and standard deviation against layer at initialization"
        + (f" for {levels.listing(levels.order('activation', selu_runs['activation'].unique()))}"
           if not selu_runs.empty else "")
        + " with LeCun-normal weights (study \\texttt{selu}).")


@figure(width=SINGLE_COLUMN, studies=("selu",), caption=selu_caption,
        report="Activation mean and standard deviation against layer at initialization for SELU and the "
               "comparison activations with LeCun-normal weights (study selu).")
def selu_statistics(layers: pd.DataFrame, *, study: str = "selu", step: int = 0,
                    width: Optional[float] = SINGLE_COLUMN) -> Figure:
    """Activation mean (left) and standard deviation (right, log y) against layer at ``step``.

    One line per activation (mean over seeds, band min..max); dotted lines mark the
    self-normalizing targets, mean 0 and std 1.
    """
    from gradatlas.analysis.figures import plot, style

    part = select.rows(layers, "selu_statistics", study=study, quantity=("act_mean", "act_std"),
                       columns=("step", "layer", "activation"))
    part = part[part["step"] == step]
    if part.empty:
        raise NoData(f"selu_statistics: no rows at step {step} in study {study!r}")
    acts = levels.order("activation", part["activation"])
    fig, axes = style.figure(1, 2, width, row_height=1.8, sharex=True)
    for ax, quantity, target in ((axes[0, 0], "act_mean", 0.0), (axes[0, 1], "act_std", 1.0)):
        rows = part[part["quantity"] == quantity]
        ax.axhline(target, color="0.5", linestyle=":", linewidth=0.8, label="_target")
        for act in acts:
            plot.mean_line(ax, rows[rows["activation"] == act], "layer", "value", label=str(act),
                           color=style.color("activation", act, acts))
        if quantity == "act_std":
            ax.set_yscale("log")
        ax.set_xlabel("layer (0 = input)")
        ax.set_ylabel(f"{levels.quantity_label(quantity)} (step {step})")
    style.fig_legend(fig, [style.line_handle(str(a), style.color("activation", a, acts), marker="o") for a in acts]
                     + [style.line_handle("target", "0.5", ":")])
    return fig

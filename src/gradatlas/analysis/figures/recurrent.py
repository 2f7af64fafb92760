"""Recurrence: the gradient through time against the distance to the loss (study memory)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from gradatlas.analysis.figures import levels, select
from gradatlas.analysis.figures.spec import DOUBLE_COLUMN, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TASKS = {"adding": "the adding problem", "copy": "the copy task", "mnist1d_seq": "sequential MNIST-1D"}


def recurrent_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``hidden_grad_vs_distance``: the models, tasks and lengths drawn."""
    memory = levels.study_rows(timesteps, "memory")
    if memory.empty:
        return "Gradient norm through time: no recurrent runs at this scale."
    datas = [TASKS.get(d, levels.tex(d)) for d in levels.order("data", memory["data"].unique())]
    models = [levels.MODEL_LABELS.get(m, levels.tex(m)) for m in levels.order("model", memory["model"].unique())]
    lengths = sorted(memory["length"].dropna().unique())
    mem_runs = levels.study_rows(runs, "memory")
    return (
        r"Norm of $\partial\ell/\partial h_t$ against the distance to the loss for " + levels.listing(models)
        + " on " + " and ".join(datas)
        + (f" (length{'s' if len(lengths) > 1 else ''} {levels.listing(lengths)})" if lengths else "")
        + "; solid at initialization, dashed at the last probed step, mean over seeds (log scale)."
        + (levels.diverged_text(mem_runs) if not mem_runs.empty else ""))


@figure(width=DOUBLE_COLUMN, studies=("memory",), caption=recurrent_caption,
        report="Norm of dLoss/dh_t against the distance to the loss for the recurrent models and sequence tasks "
               "of study memory run at this scale. Log scale; diverged runs are marks, not part of the means.")
def hidden_grad_vs_distance(timesteps: pd.DataFrame, *, study: str = "memory", quantity: str = "hidden_grad_norm",
                            width: Optional[float] = None) -> Figure:
    """‖∂ℓ/∂h_t‖ against the distance to the loss T − t (log y) for RNN, GRU and LSTM.

    T is the last time step of the run. Rows are data sets, columns sequence lengths; solid
    lines at initialization (step 0), dashed at each run's last probed step; mean over seeds.
    """
    from matplotlib.ticker import MaxNLocator

    from gradatlas.analysis.figures import plot, style

    part = select.rows(timesteps, "hidden_grad_vs_distance", study=study, quantity=quantity,
                       columns=("run", "step", "t", "model", "data", "length"))
    part = part.copy()
    part["distance"] = part.groupby(["run", "step"])["t"].transform("max") - part["t"]
    datas = levels.order("data", part["data"])
    lengths = sorted(part["length"].dropna().unique()) or [np.nan]
    models = levels.order("model", part["model"])
    first = part[part["step"] == 0]
    last = select.last_step_rows(part)
    last = last[last["step"] > 0]
    fig, axes = style.figure(len(datas), len(lengths), width)
    for r, data in enumerate(datas):
        for c, length in enumerate(lengths):
            ax = axes[r, c]
            empty = True
            for rows, dash, when in ((first, "-", "init"), (last, "--", "last step")):
                cell = rows[(rows["data"] == data) & ((rows["length"] == length) | levels.missing(length))]
                for model in models:
                    lines = cell[cell["model"] == model]
                    empty &= lines.empty
                    label = f"{levels.MODEL_LABELS.get(model, model)}, {when}"
                    plot.mean_line(ax, lines, "distance", "value", label=label,
                                   color=style.color("model", model, models), linestyle=dash, marker=None)
            if empty:
                style.note(ax, "no rows")
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # distances are whole steps
            ax.set_title(f"{data}, T = {levels.fmt(length)}")
            ax.set_xlabel("distance T − t" if r == len(datas) - 1 else "")
            ax.set_ylabel(levels.quantity_label(quantity) if c == 0 else "")
    style.share(axes, y=True)
    # A seed whose gradient underflows to 0 pulls the min..max band down to the smallest
    # float: keep the axis to a decade below the lowest mean line instead.
    means = [y for ax in axes.flat for line in ax.get_lines() for y in np.asarray(line.get_ydata(), dtype=float)]
    positive = [y for y in means if np.isfinite(y) and y > 0]
    if positive:
        for ax in axes.flat:
            ax.set_ylim(bottom=max(ax.get_ylim()[0], min(positive) / 10))
    handles = [style.line_handle(levels.MODEL_LABELS.get(m, str(m)), style.color("model", m, models)) for m in models]
    handles += [style.line_handle("initialization", "0.3", "-"), style.line_handle("last probed step", "0.3", "--")]
    style.fig_legend(fig, handles)
    return fig

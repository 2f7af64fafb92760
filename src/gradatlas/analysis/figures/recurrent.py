"""Recurrence: the gradient through time against the distance to the loss (study memory)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from gradatlas.analysis.figures import levels, select
from gradatlas.analysis.figures.spec import DOUBLE_COLUMN, NoData, figure

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


GAIN_STUDY = "clipping_rnn"


def _gain_rows(theory: pd.DataFrame, study: str) -> pd.DataFrame:
    """The vanilla-RNN rows of ``study`` in the theory table with a finite gain and factors."""
    if theory is None or len(theory) == 0 or "theory" not in theory:
        return pd.DataFrame(columns=["gain", "predicted_factor", "measured_factor"])
    part = theory[(theory["theory"].astype(str) == "rnn_time") & (theory["study"].astype(str) == study)]
    finite = np.ones(len(part), dtype=bool)
    for column in ("gain", "predicted_factor", "measured_factor"):
        finite &= np.isfinite(part[column].astype(float).to_numpy())
    return part[finite]


def gain_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``recurrent_gain_factor``: the gains and the sequence length drawn."""
    rows = levels.study_rows(runs, GAIN_STUDY)
    if rows.empty:
        return "Per-step gradient factor against the recurrent gain: no runs of clipping\\_rnn at this scale."
    gains = sorted(rows["gain"].dropna().unique())
    lengths = sorted(rows["length"].dropna().unique()) if "length" in rows else []
    return (r"Per-step factor of $\|\partial\ell/\partial h_t\|$ at initialization against the gain $g$ of "
            r"the orthogonal recurrent weights (vanilla tanh RNN, study \texttt{clipping\_rnn}, "
            + f"{len(gains)} gain{'s' if len(gains) != 1 else ''} from {levels.fmt(gains[0])} to "
            + f"{levels.fmt(gains[-1])}" + (f", T = {levels.listing(lengths)}" if lengths else "")
            + "): markers the measured factor (mean over seeds, band min..max), line the mean field over time "
              "with the input drive, dotted the factor 1 and the gain 1.")


@figure(width=DOUBLE_COLUMN, studies=(GAIN_STUDY,), caption=gain_caption,
        report="Per-step factor of the hidden-state gradient norm at initialization against the recurrent gain "
               "of a vanilla tanh RNN (study clipping_rnn): measured (mean over seeds) and the mean field over time "
               "with the input drive; dotted lines at factor 1 and gain 1.")
def recurrent_gain_factor(theory: pd.DataFrame, *, study: str = GAIN_STUDY, width: Optional[float] = None) -> Figure:
    """Measured and predicted per-step gradient factor against the recurrent gain g.

    ``theory`` is the theory table (``theory.theory_table``); its ``rnn_time`` rows of ``study``
    are drawn: the measured factor (markers, mean over seeds, band min..max) and the predicted
    one (line, mean per gain), with the factor-1 and gain-1 lines; where the predicted line
    crosses 1 a vertical mark gives the predicted crossing.
    """
    from gradatlas.analysis.figures import plot, style

    part = _gain_rows(theory, study)
    if part.empty:
        raise NoData(f"recurrent_gain_factor: no rnn_time rows of study {study!r} in the theory table")
    fig, axes = style.figure(1, 1, width, row_height=2.2)
    ax = axes[0, 0]
    plot.mean_line(ax, part, "gain", "predicted_factor", label="mean field", color="0.2", marker=None, band=False)
    plot.mean_line(ax, part, "gain", "measured_factor", label="measured", color=style.color("model", "rnn", ["rnn"]),
                   linestyle="none", marker="o")
    predicted = part.groupby("gain")["predicted_factor"].mean().sort_index()
    logs = np.log(predicted.to_numpy(dtype=float))
    change = np.nonzero((logs[:-1] < 0) & (logs[1:] >= 0))[0]
    if len(change):
        i = int(change[0])
        gains = predicted.index.to_numpy(dtype=float)
        crossing = gains[i] + (gains[i + 1] - gains[i]) * -logs[i] / (logs[i + 1] - logs[i])
        ax.axvline(crossing, color="0.2", linestyle="--", linewidth=0.8)
        ax.annotate(f"predicted crossing {crossing:.3f}", (crossing, 1.0), xytext=(4, -12),
                    textcoords="offset points", fontsize="small")
    ax.axhline(1.0, color="0.6", linestyle=":", linewidth=0.8)
    ax.axvline(1.0, color="0.6", linestyle=":", linewidth=0.8)
    ax.set_xlabel(r"recurrent gain $g$ (largest singular value of $W_{rec}$)")
    ax.set_ylabel(r"per-step factor of $\|\partial\ell/\partial h_t\|$")
    style.fig_legend(fig, [style.line_handle("mean field over time", "0.2", "-"),
                           style.line_handle("measured (mean over seeds)", style.color("model", "rnn", ["rnn"]),
                                             "none", "o")])
    return fig

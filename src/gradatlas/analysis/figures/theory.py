"""Theory against measurement: the mean-field gradient factor (study meanfield), the
theories past the plain MLP (batch norm, residual blocks, the vanilla RNN over time) and the
RNN's per-step factor against its recurrent gain (study clipping_rnn)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from gradatlas.analysis.figures import levels, select
from gradatlas.analysis.figures.spec import DOUBLE_COLUMN, SINGLE_COLUMN, NoData, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# The studies whose runs the theories past the plain MLP have rows for (``theory.beyond_meanfield_rows``
# takes the qualifying runs of any study): batch-norm MLPs, residual MLPs, vanilla RNNs.
BEYOND_STUDIES = ("normalization", "residual", "memory", "clipping_rnn")


@figure(width=SINGLE_COLUMN, studies=("meanfield",),
        caption="Mean-field prediction $\\sqrt{\\chi_1}$ against the measured per-layer gradient factor at "
                "initialization (study \\texttt{meanfield}).",
        report="Mean-field prediction sqrt(chi_1) of the per-layer gradient factor against the factor measured "
               "at initialization (study meanfield).")
def theory_vs_measurement(theory: pd.DataFrame, *, study: Optional[str] = "meanfield",
                          width: Optional[float] = SINGLE_COLUMN) -> Figure:
    """Mean-field prediction against measurement of the per-layer gradient factor.

    ``theory`` has columns ``activation``, ``sigma_w2`` (or ``gain``), ``predicted_factor``
    and ``measured_factor`` (one row per run or per cell); where it has a ``study`` column,
    only the rows of ``study`` are drawn (``None``: all). Left: both factors against the
    weight variance (line: predicted, mean per x; markers: measured, mean over rows);
    right: measured against predicted, one point per row, with the identity line; log axes.
    """
    from gradatlas.analysis.figures import plot, style

    if theory is None or len(theory) == 0:
        raise NoData("theory_vs_measurement: the theory table is empty")
    x = "sigma_w2" if "sigma_w2" in theory else "gain"
    select.require_columns(theory, ("activation", x, "predicted_factor", "measured_factor"), "theory_vs_measurement")
    part = select.plain(theory)
    if study is not None and "study" in part:
        part = part[part["study"] == study]
        if part.empty:
            raise NoData(f"theory_vs_measurement: no rows for study {study!r}")
    part = part[np.isfinite(part["predicted_factor"].astype(float)) & np.isfinite(part["measured_factor"].astype(float))
                & np.isfinite(part[x].astype(float))]
    if part.empty:
        raise NoData("theory_vs_measurement: no finite predicted and measured factors")
    acts = levels.order("activation", part["activation"])
    fig, axes = style.figure(1, 2, width, row_height=1.9)
    left, right = axes[0]
    for act in acts:
        rows = part[part["activation"] == act]
        color = style.color("activation", act, acts)
        plot.mean_line(left, rows, x, "predicted_factor", label=f"{act} predicted", color=color, marker=None,
                       band=False)
        plot.mean_line(left, rows, x, "measured_factor", label=f"{act} measured", color=color, linestyle="none",
                       marker="o")
        right.plot(rows["predicted_factor"].to_numpy(), rows["measured_factor"].to_numpy(), marker="o",
                   linestyle="none", color=color, label=str(act))
    left.axhline(1.0, color="0.6", linestyle=":", linewidth=0.8, label="_critical")
    left.set_yscale("log")
    left.set_xlabel(r"weight variance $\sigma_w^2$" if x == "sigma_w2" else "weight gain")
    left.set_ylabel("per-layer gradient factor")
    values = np.concatenate([part["predicted_factor"].to_numpy(float), part["measured_factor"].to_numpy(float)])
    positive = values[values > 0]
    low, high = (positive.min(), positive.max()) if positive.size else (0.1, 10.0)
    span = np.array([low / 1.2, high * 1.2])
    right.plot(span, span, color="0.5", linestyle="--", linewidth=0.8, label="identity")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel(r"predicted factor $\sqrt{\chi_1}$")
    right.set_ylabel("measured factor")
    style.fig_legend(fig, [style.line_handle(str(a), style.color("activation", a, acts), marker="o") for a in acts]
                     + [style.line_handle("predicted", "0.3", "-"), style.line_handle("measured", "0.3", "none", "o"),
                        style.line_handle("identity", "0.5", "--")], ncol=3)
    return fig


# The theories past the mean-field MLP (``theory.beyond_meanfield_rows``), in drawing order.
THEORY_LABELS = {"batchnorm_mlp": "batch norm MLP", "residual_mlp": "residual MLP",
                 "rnn_time": "vanilla RNN, per step"}
_ACTIVATION_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@figure(width=SINGLE_COLUMN, studies=BEYOND_STUDIES,
        caption="Predicted and measured gradient factors at initialization for batch-norm MLPs (per layer), "
                "pre-activation residual MLPs (per block) and vanilla RNNs (per time step), one point per run "
                "where the scale has such runs; the legend gives each theory's number of runs and its median and largest "
                "relative error.",
        report="Gradient factor at initialization past the plain MLP, predicted against measured, one point per "
               "run: batch norm (Yang et al. 2019; pi/(pi-1) per layer in the squared norm for ReLU), the "
               "pre-activation residual MLP and the vanilla RNN per time step (mean field over time with the "
               "input drive).")
def theory_beyond_meanfield(theory: pd.DataFrame, *, width: Optional[float] = SINGLE_COLUMN) -> Figure:
    """Predicted against measured gradient factor at initialization past the plain MLP.

    ``theory`` is the theory table (``theory.theory_table``); its rows whose ``theory`` is a
    key of ``THEORY_LABELS`` are drawn, one point per run: colour by theory, marker by
    activation, log axes, the identity line. Each legend entry gives the number of runs and the
    median and largest relative error |measured - predicted| / predicted of that theory.
    """
    import seaborn as sns
    from matplotlib.lines import Line2D

    from gradatlas.analysis.figures import style

    if theory is None or len(theory) == 0 or "theory" not in theory:
        raise NoData("theory_beyond_meanfield: the theory table has no batch-norm, residual or RNN rows")
    select.require_columns(theory, ("theory", "activation", "predicted_factor", "measured_factor"),
                           "theory_beyond_meanfield")
    part = select.plain(theory)
    part = part[part["theory"].isin(list(THEORY_LABELS))]
    part = part[np.isfinite(part["predicted_factor"].astype(float)) & np.isfinite(part["measured_factor"].astype(float))
                & (part["predicted_factor"].astype(float) > 0) & (part["measured_factor"].astype(float) > 0)]
    if part.empty:
        raise NoData("theory_beyond_meanfield: no finite batch-norm, residual or RNN predictions with measurements")
    kinds = [k for k in THEORY_LABELS if (part["theory"] == k).any()]
    acts = levels.order("activation", part["activation"])
    markers = {act: _ACTIVATION_MARKERS[i % len(_ACTIVATION_MARKERS)] for i, act in enumerate(acts)}
    palette = sns.color_palette(style.PALETTE)
    colors = {kind: palette[i] for i, kind in enumerate(THEORY_LABELS)}
    fig, axes = style.figure(1, 1, width, row_height=2.3)
    ax = axes[0, 0]
    handles = []
    for kind in kinds:
        rows = part[part["theory"] == kind]
        for act in acts:
            sel = rows[rows["activation"] == act]
            if len(sel):
                ax.plot(sel["predicted_factor"].to_numpy(float), sel["measured_factor"].to_numpy(float),
                        marker=markers[act], linestyle="none", color=colors[kind], label=f"{kind} {act}")
        errors = (rows["measured_factor"].astype(float) / rows["predicted_factor"].astype(float) - 1).abs()
        # The median and the worst run: a median alone would hide the runs the theory misses.
        # Short enough for one column: the longest entry once ran off the page.
        handles.append(style.line_handle(f"{THEORY_LABELS[kind]}: n={len(rows)}, error median "
                                         f"{100 * errors.median():.2g}%, max {100 * errors.max():.2g}%",
                                         colors[kind], "none", "o"))
    values = np.concatenate([part["predicted_factor"].to_numpy(float), part["measured_factor"].to_numpy(float)])
    span = np.array([values.min() / 1.2, values.max() * 1.2])
    ax.plot(span, span, color="0.5", linestyle="--", linewidth=0.8, label="identity")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("predicted per-layer (per-step) factor")
    ax.set_ylabel("measured factor")
    style.fig_legend(fig, handles, ncol=1)
    # Markers (activations, hollow: they carry no theory colour) and the identity in the panel.
    shapes = [Line2D([], [], color="0.3", marker=markers[a], markerfacecolor="none", linestyle="none", label=str(a))
              for a in acts]
    ax.legend(handles=[*shapes, style.line_handle("identity", "0.5", "--")], loc="lower right", fontsize=7)
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

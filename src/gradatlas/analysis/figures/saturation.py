"""Saturation during training (study saturation, claim 22): each hidden layer's mean activation
(sigmoid) and saturated share (tanh) over the training steps, standard against normalized
initialization, as Glorot and Bengio's figures 2 and 3 show them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import pandas as pd

from gradatlas.analysis.figures import levels, select
from gradatlas.analysis.figures.spec import DOUBLE_COLUMN, NoData, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STUDY = "saturation"
# (activation, the quantity its row shows, the y label)
ROWS = (("sigmoid", "act_mean", "mean activation"), ("tanh", "saturated_frac", "saturated share"))
INIT_LABELS = {"default": r"standard $U(-1/\sqrt{n}, 1/\sqrt{n})$", "xavier_uniform": "normalized (Xavier uniform)"}


def saturation_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``saturation_during_training``: what is drawn and over how many seeds."""
    from gradatlas.analysis.claims.catalog.saturation import ONSET_SHARE, PROBE_SATURATION, TOP_SATURATED

    part = levels.study_rows(runs, STUDY)
    seeds = f"{part['seed'].nunique()} seeds" if not part.empty else "seeds"
    depth = f"{int(part['depth'].max())} hidden layers" if not part.empty else "five hidden layers"
    return ("Saturation during training, MLPs of " + depth + " trained by SGD: top, each sigmoid layer's mean "
            f"activation (dotted: {TOP_SATURATED.value:g}, below which a layer counts as saturated at 0); bottom, each "
            f"tanh layer's share of units with $|\\phi'| < {PROBE_SATURATION:g}\\sup|\\phi'|$ (dotted: "
            f"{ONSET_SHARE.value:g}, the onset of saturation); left, the standard "
            "initialization $U(-1/\\sqrt{n}, 1/\\sqrt{n})$, right, the normalized one. Mean over " + seeds +
            " (band min--max), the layer from the first (dark) to the top one (light); the step axis is "
            "logarithmic (step + 1).")


@figure(width=DOUBLE_COLUMN, studies=(STUDY,), caption=saturation_caption,
        report="Per-layer mean activation of sigmoid MLPs and saturated share of tanh MLPs over training steps, "
               "standard vs normalized initialization (study saturation, Glorot and Bengio 2010).")
def saturation_during_training(runs: pd.DataFrame, layers: pd.DataFrame, *, study: str = STUDY,
                               width: Optional[float] = DOUBLE_COLUMN) -> Figure:
    """Rows: sigmoid (mean activation), tanh (saturated share); columns: the initializers; one
    line per hidden layer over step + 1 (log x)."""
    from gradatlas.analysis.claims.catalog.saturation import ONSET_SHARE, TOP_SATURATED
    from gradatlas.analysis.figures import plot, style

    chosen = levels.study_rows(runs, study)
    if chosen.empty or layers is None or len(layers) == 0:
        raise NoData(f"saturation_during_training: no runs of study {study!r}")
    chosen = chosen[chosen["status"].astype(str) == "ok"] if "status" in chosen else chosen
    inits = levels.order("init", chosen["init"])
    frame = select.hidden_rows_of(layers, chosen, ("activation", "init"))
    if frame.empty:
        raise NoData(f"saturation_during_training: no probes of study {study!r}")
    frame = frame.assign(x=frame["step"].astype(float) + 1.0)
    depth_levels = sorted(frame["layer"].unique())
    colors = style.sequential(depth_levels)
    fig, axes = style.figure(len(ROWS), len(inits), width, row_height=1.9)
    for row, (activation, quantity, label) in enumerate(ROWS):
        for col, init in enumerate(inits):
            ax = axes[row, col]
            mine = frame[(frame["activation"] == activation) & (frame["init"] == init)
                         & (frame["quantity"].astype(str) == quantity)]
            if mine.empty:
                style.note(ax, f"no {activation} runs")
                continue
            for layer in depth_levels:
                plot.mean_line(ax, mine[mine["layer"] == layer], "x", "value", label=f"layer {layer + 1}",
                               color=colors[layer], marker=None)
            level = TOP_SATURATED if quantity == "act_mean" else ONSET_SHARE
            ax.axhline(level.value, color="0.5", linestyle=":", linewidth=0.8)
            ax.set_xscale("log")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{activation}, {INIT_LABELS.get(init, init)}", fontsize=7)
            ax.set_ylabel(label)
            if row == len(ROWS) - 1:
                ax.set_xlabel("training step + 1")
    style.fig_legend(fig, [style.line_handle(f"layer {layer + 1}", colors[layer]) for layer in depth_levels])
    return fig

"""Normalization: the first-layer gradient and the accuracy per norm (study normalization)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from gradatlas.analysis.figures import levels, select
from gradatlas.analysis.figures.spec import DOUBLE_COLUMN, NoData, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


# float32's smallest normal number: a gradient at or below it has underflowed (numpy's finfo, not
# torch's, so that the figures import no torch).
FLOAT32_SMALLEST_NORMAL = float(np.finfo(np.float32).tiny)


def normalization_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``normalization_effect``: the activations and depths drawn."""
    norm_runs = levels.study_rows(runs, "normalization")
    underflows = 0
    if layers is not None and len(layers) and not norm_runs.empty:
        first = layers[(layers["quantity"].astype(str) == "backprop_norm") & (layers["layer"] == 0)
                       & (layers["step"] == 0) & layers["run"].astype(str).isin(norm_runs["run"].astype(str))]
        underflows = int((first["value"].astype(float) <= FLOAT32_SMALLEST_NORMAL).sum())
    return (
        "First-layer backpropagated norm at initialization (top, log scale) and test accuracy (bottom) per "
        "normalization" + (f", for {levels.listing(levels.order('activation', norm_runs['activation'].unique()))} "
                           f"at depth {levels.listing(sorted(norm_runs['depth'].unique()))}"
                           if not norm_runs.empty else "")
        + " (study \\texttt{normalization}; mean over seeds, whiskers min--max; a gradient at or below float32's "
           "smallest normal number is an underflow, left out of the means and marked by a triangle at the axis' foot"
        + (f": {underflows} runs" if underflows else ": none") + ")."
        + (levels.diverged_text(norm_runs) if not norm_runs.empty else ""))


@figure(width=DOUBLE_COLUMN, studies=("normalization",), caption=normalization_caption,
        report="Effect of batch and layer normalization on the first-layer gradient and on accuracy, per "
               "activation and depth (study normalization); diverged runs have no accuracy and are left out.")
def normalization_effect(runs: pd.DataFrame, layers: pd.DataFrame, *, study: str = "normalization",
                         step: int = 0, width: Optional[float] = None) -> Figure:
    """First-layer backprop norm (top, log y, at ``step``) and test accuracy (bottom) per norm.

    One column per depth, activations along x, one colour per normalization. Top: points
    (a bar has no natural base on a log axis); bottom: bars; both the mean over seeds with
    whiskers min..max. The dashed line in the bottom row is the chance level.
    """
    import seaborn as sns
    from matplotlib.patches import Patch

    from gradatlas.analysis.figures import plot, style

    try:
        grads = select.rows(layers, "normalization_effect", study=study, quantity="backprop_norm",
                            columns=("layer", "step", "activation", "norm", "depth"))
        grads = grads[(grads["layer"] == 0) & (grads["step"] == step)]
    except NoData:
        grads = pd.DataFrame()
    try:
        scores = select.rows(runs, "normalization_effect", study=study,
                             columns=("activation", "norm", "depth", "test_metric"))
        scores = select.not_diverged(scores)
        scores = scores[np.isfinite(scores["test_metric"].astype(float))]
    except NoData:
        scores = pd.DataFrame()
    if grads.empty and scores.empty:
        raise NoData(f"normalization_effect: no rows for study {study!r}")
    frames = [f for f in (grads, scores) if not f.empty]
    both = pd.concat([f[["activation", "norm", "depth"]] for f in frames])
    acts = levels.order("activation", both["activation"])
    norms = levels.order("norm", both["norm"])
    depths = sorted(both["depth"].unique())
    palette = {n: style.color("norm", n, norms) for n in norms}
    fig, axes = style.figure(2, len(depths), width, sharex=True, sharey="row")
    for col, depth in enumerate(depths):
        for row, (frame, y) in enumerate([(grads, "value"), (scores, "test_metric")]):
            ax = axes[row, col]
            panel = frame[frame["depth"] == depth] if not frame.empty else frame
            if panel.empty:
                style.note(ax, "no rows")
                continue
            if row == 0:
                plot.dodged_points(ax, panel, "activation", y, "norm", acts, norms, palette, floor=FLOAT32_SMALLEST_NORMAL)
            else:
                sns.barplot(data=panel, x="activation", y=y, hue="norm", order=acts, hue_order=norms,
                            palette=palette, estimator="mean", errorbar=("pi", 100), err_kws={"linewidth": 0.8},
                            ax=ax, legend=False)
                for container, norm in zip(ax.containers, norms):
                    container.set_label(str(norm))
            ax.set_xlabel("activation" if row == 1 else "")
        axes[0, col].set_title(f"depth {levels.fmt(depth)}")
    axes[0, 0].set_ylabel("first-layer backprop norm\n" + r"$\|\partial\ell/\partial z_0\|$" + f" (step {step})")
    axes[1, 0].set_ylabel(levels.metric_label(scores) if not scores.empty else "test metric")
    for ax in axes[0]:
        if ax.get_lines():
            ax.set_yscale("log")
    if not scores.empty and "chance" in scores:
        for col, depth in enumerate(depths):
            chance = scores.loc[scores["depth"] == depth, "chance"].mean()
            if np.isfinite(chance):
                axes[1, col].axhline(chance, color="0.4", linestyle="--", linewidth=0.8, label="_chance")
    style.fig_legend(fig, [Patch(color=palette[n], label=str(n)) for n in norms], title="normalization")
    return fig

"""Exploding gradients: loss curves and divergence with and without clipping (studies clipping_mlp, clipping_rnn)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
import pandas as pd

from gradatlas.analysis.figures import levels, select
from gradatlas.analysis.figures.spec import SINGLE_COLUMN, NoData, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STUDIES = ("clipping_mlp", "clipping_rnn")
# Factors a clipping study may sweep besides ``clip``, in the order they are looked for.
SWEPT_FACTORS = ("lr", "gain", "init_std", "clip_value", "length", "depth", "width")
# Bars in one single-column panel above which their labels are drawn vertically.
CROWDED_BARS = 12


def _swept_factor(frame: pd.DataFrame) -> Optional[str]:
    """The first of ``SWEPT_FACTORS`` that takes more than one value in ``frame``."""
    for factor in SWEPT_FACTORS:
        if factor in frame and frame[factor].dropna().nunique() > 1:
            return factor
    return None


def clipping_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``clipping``: how many of the runs diverged."""
    clip_runs = pd.concat([levels.study_rows(runs, study) for study in STUDIES])
    return (
        "Training loss with and without gradient clipping (top; x: a diverged run's last finite loss; dotted: the "
        "loss at chance), the share of runs that diverged (middle) and the share of the runs that did not diverge "
        "but failed to train (bottom: final training loss above the initial one, or test skill at chance)" + (f"; {int((clip_runs['status'] == 'diverged').sum())} of "
                                             f"{len(clip_runs)} runs diverged." if not clip_runs.empty else "."))


@figure(width=SINGLE_COLUMN, studies=STUDIES, caption=clipping_caption,
        report="Training loss curves and the share of diverged runs with and without gradient clipping (studies "
               "clipping_mlp and clipping_rnn).")
def clipping(runs: pd.DataFrame, steps: Optional[pd.DataFrame] = None, *,
             studies: Sequence[str] = STUDIES, width: Optional[float] = None) -> Figure:
    """Training loss curves (top) and the share of diverged runs (bottom) with and without clipping.

    One column per study. Top: every run at the largest value of the study's swept factor
    (e.g. the largest learning rate or recurrent gain, where exploding is worst), one thin
    line per run coloured by the clipping mode, log y; an x marks a diverged run's last
    finite loss. Bottom: the share of runs with status ``diverged`` per swept value and
    clipping mode (``failed`` runs are left out of the share).
    """
    import seaborn as sns
    from matplotlib.patches import Patch

    from gradatlas.analysis.figures import style

    if runs is None or len(runs) == 0:
        raise NoData("clipping: the runs table is empty")
    select.require_columns(runs, ("run", "study", "clip", "status"), "clipping")
    part = select.plain(runs[runs["study"].astype(object).isin(list(studies))])
    if part.empty:
        raise NoData(f"clipping: no rows for studies {', '.join(studies)}")
    present = [s for s in studies if s in set(part["study"])]
    clips = levels.order("clip", part["clip"])
    palette = {c: style.color("clip", c, clips) for c in clips}
    from gradatlas.analysis.claims.measures import failed_to_train

    fig, axes = style.figure(3, len(present), width, row_height=1.45)
    curves = pd.DataFrame()
    if steps is not None and len(steps):
        select.require_columns(steps, ("run", "step", "loss"), "clipping (steps)")
        curves = select.plain(steps[steps["run"].astype(object).isin(set(part["run"]))])
    for col, study in enumerate(present):
        rows = part[part["study"] == study]
        factor = _swept_factor(rows)
        # Loss curves where exploding is worst: the largest value of the swept factor.
        top = axes[0, col]
        hardest = rows if factor is None else rows[rows[factor] == rows[factor].max()]
        # On two lines: "clipping_rnn: gain = 1.6" ran past a single column's right edge.
        title = study if factor is None else f"{study}\n{factor} = {levels.fmt(rows[factor].max())}"
        drawn = False
        for run in hardest.sort_values(["clip", "run"])["run"]:
            curve = curves[curves["run"] == run].sort_values("step") if not curves.empty else curves
            if curve.empty:
                continue
            clip = hardest.loc[hardest["run"] == run, "clip"].iloc[0]
            loss = curve["loss"].astype(float).to_numpy()
            top.plot(curve["step"].to_numpy(), loss, color=palette[clip], linewidth=0.8, alpha=0.85, label=str(run))
            status = hardest.loc[hardest["run"] == run, "status"].iloc[0]
            finite = np.isfinite(loss)
            if status == "diverged" and finite.any():
                at = np.flatnonzero(finite)[-1]
                top.plot([curve["step"].to_numpy()[at]], [loss[at]], marker="x", color=palette[clip],
                         linestyle="none", label=f"_diverged {run}")
            drawn = True
        if drawn:
            top.set_yscale("log")
            chance = _chance_loss(hardest)
            if chance is not None:
                top.axhline(chance, color="black", linestyle=":", linewidth=0.8)
        else:
            style.note(top, "no step tables")
        top.set_title(title)
        top.set_xlabel("step")
        top.set_ylabel("training loss" if col == 0 else "")
        # The share of runs that diverged, and of those that did not diverge but failed to train
        # (the quantity that decides claim 8 beside divergence), per swept value and clipping mode.
        counted = rows[rows["status"].isin(["ok", "diverged"])].copy()
        counted["diverged"] = (counted["status"] == "diverged").astype(float)
        # Older summaries without the training losses cannot say which runs failed to train.
        known = {"final_train_loss", "first_loss", "test_metric", "chance", "metric"} <= set(counted.columns)
        counted["failed"] = failed_to_train(counted).astype(float) if known else np.nan
        x = factor if factor is not None else "study"
        order = sorted(counted[x].unique()) if factor is not None else [study]
        counted["level"] = counted[x].map(levels.fmt)
        for row, (quantity, label, subset) in enumerate(
                (("diverged", "diverged\n(share of runs)", counted),
                 ("failed", "failed to train (share\nof runs not diverged)", counted[counted["diverged"] == 0])),
                start=1):
            ax = axes[row, col]
            if subset.empty or subset[quantity].isna().all():
                style.note(ax, "no finished runs" if subset.empty else "no training losses in the summary")
            else:
                sns.barplot(data=subset, x="level", y=quantity, hue="clip", order=[levels.fmt(v) for v in order],
                            hue_order=clips, palette=palette, estimator="mean", errorbar=None, ax=ax, legend=False)
                # Many levels in one column (the RNN's 11 gains): ticks and values upright would
                # overlap, so both turn vertical.
                crowded = len(order) * len(clips) > CROWDED_BARS
                for container, clip in zip(ax.containers, clips):
                    container.set_label(str(clip))
                    # A share of 0 is a bar of no height: print the values so it reads as 0, not missing.
                    ax.bar_label(container, fmt="%.2g", fontsize=5 if crowded else 6, padding=1,
                                 rotation=90 if crowded else 0)
                if crowded:
                    ax.tick_params(axis="x", labelrotation=90)
            ax.set_ylim(0, 1.3)
            ax.set_xlabel(factor if factor is not None and row == 2 else "")
            ax.set_ylabel(label if col == 0 else "")
    style.fig_legend(fig, [Patch(color=palette[c], label=str(c)) for c in clips] + [
        style.line_handle("diverged", "0.3", "none", "x"), style.line_handle("chance loss", "black", ":")],
        title="clipping")
    return fig


def _chance_loss(runs: pd.DataFrame) -> Optional[float]:
    """The training loss of a model at chance: ln(1 / chance accuracy) for cross-entropy, the
    chance-level MSE for a regression task; None where the runs do not say."""
    if "chance" not in runs or "metric" not in runs or runs.empty:
        return None
    chance, metric = float(runs["chance"].astype(float).mean()), str(runs["metric"].iloc[0])
    if not np.isfinite(chance) or chance <= 0:
        return None
    return chance if metric == "mse" else float(np.log(1.0 / chance))

"""Initialization statistics against their theory: the finite-width fluctuation of the backward
gain over beta = sum 1/n_l (study width_fluctuations) and the per-layer rate of normalized MLPs
over the batch size (study batchnorm_explosion)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from gradatlas.analysis.figures import levels
from gradatlas.analysis.figures.spec import DOUBLE_COLUMN, SINGLE_COLUMN, NoData, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTH_STUDY = "width_fluctuations"
NORM_STUDY = "batchnorm_explosion"


def _tables(runs: pd.DataFrame, layers: pd.DataFrame):
    from gradatlas.analysis.claims.summary import Tables

    return Tables(runs, layers, pd.DataFrame(columns=["run", "step", "t", "quantity", "value"]))


def _cells(runs: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    from gradatlas.analysis.claims.catalog import width_beta

    samples = width_beta.cell_samples(_tables(runs, layers))
    if samples.empty:
        raise NoData(f"fluctuation_vs_beta: no {WIDTH_STUDY} runs with backward-gain probes")
    cells = width_beta.cell_table(samples)
    alternating = runs.set_index("cell")["width_alt"] if "width_alt" in runs else pd.Series(dtype=float)
    cells["alternating"] = [bool(pd.notna(alternating.get(c, np.nan))) if not isinstance(alternating.get(c), pd.Series)
                            else bool(alternating.get(c).notna().any()) for c in cells["cell"]]
    return cells


def fluctuation_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``fluctuation_vs_beta``: the depths and widths drawn."""
    part = levels.study_rows(runs, WIDTH_STUDY)
    where = (f" over depths {levels.listing(sorted(int(d) for d in part['depth'].unique()))} and widths "
             f"{levels.listing(sorted(int(w) for w in part['width'].unique()))}" if not part.empty else "")
    return ("Variance of $\\ln r$, $r = \\|\\partial L/\\partial z_0\\|^2 / \\|\\partial L/\\partial "
            "\\mathrm{out}\\|^2$, over initializations and inputs of He-initialized ReLU MLPs at initialization"
            + where + ", against $\\beta = \\sum_l 1/n_l$ (left; open markers: widths alternating with 96) and "
            "against depth (right); line: the product-of-$\\chi^2$ prediction, dotted: $5\\beta$ (study "
            "\\texttt{width\\_fluctuations}).")


@figure(width=DOUBLE_COLUMN, studies=(WIDTH_STUDY,), caption=fluctuation_caption,
        report="Finite-width fluctuation of the squared backward gain at initialization (He ReLU MLPs): the "
               "variance of its log over initializations and inputs against beta = sum 1/n_l (cells coloured by "
               "depth collapse onto one curve) and against depth (they do not); line: the product-of-chi-square "
               "prediction (study width_fluctuations).")
def fluctuation_vs_beta(runs: pd.DataFrame, layers: pd.DataFrame, *, width: Optional[float] = DOUBLE_COLUMN) -> Figure:
    """Var[ln r] per cell against beta (left) and depth (right), log-log, colour by depth.

    One point per cell (pooled over its runs); filled markers: equal widths, open: alternating
    widths. The lines are the prediction at equal widths 32 and 256 (``theory.layer_log_moments``
    per layer, beta * n layers), the dotted line 5 beta.
    """
    from fractions import Fraction

    from matplotlib import ticker
    from matplotlib.lines import Line2D

    from gradatlas.analysis import theory
    from gradatlas.analysis.figures import style

    cells = _cells(runs, layers)
    depths = sorted(cells["depth"].unique())
    fig, axes = style.figure(1, 2, width, row_height=2.2)
    left, right = axes[0]
    for depth in depths:
        color = style.color("depth", depth, depths)
        for alternating, face in ((False, color), (True, "none")):
            rows = cells[(cells["depth"] == depth) & (cells["alternating"] == alternating)]
            for ax, x in ((left, "beta"), (right, "depth")):
                ax.plot(rows[x].to_numpy(float), rows["measured"].to_numpy(float), marker="o", linestyle="none",
                        color=color, markerfacecolor=face)
    grid = np.geomspace(cells["beta"].min() / 1.3, cells["beta"].max() * 1.3, 60)
    for n, dash in ((32, "-"), (256, "--")):
        # At equal widths n, depth beta * n: Var[ln r] = beta * n * v(n), v one layer's variance.
        left.plot(grid, grid * n * theory.layer_log_moments(n)[1], color="0.35", linewidth=0.8, linestyle=dash)
    left.plot(grid, theory.LOG_VARIANCE_PER_BETA * grid, color="0.5", linestyle=":", linewidth=0.8)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_ylabel(r"Var$[\ln r]$")
    left.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: str(Fraction(v).limit_denominator(1024))))
    right.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    left.set_xlabel(r"$\beta = \sum_l 1/n_l$")
    right.set_xlabel("depth")
    style.fig_legend(fig, [style.line_handle(f"depth {int(d)}", style.color("depth", d, depths), "none", "o")
                           for d in depths]
                     + [Line2D([], [], color="0.3", marker="o", markerfacecolor="none", linestyle="none",
                               label="alternating widths"),
                        style.line_handle("prediction, width 32", "0.35", "-"),
                        style.line_handle("prediction, width 256", "0.35", "--"),
                        style.line_handle(r"$5\beta$", "0.5", ":")], ncol=4)
    return fig


def rate_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``norm_rate_vs_batch``: the activations drawn."""
    part = levels.study_rows(runs, NORM_STUDY)
    acts = f" for {levels.listing(levels.order('activation', part['activation'].unique()))}" if not part.empty else ""
    return ("Per-layer factor of the backpropagated gradient norm toward the input at initialization" + acts
            + ", against the batch size, with batch norm (left) and layer norm (right); markers: runs (mean over "
            "depths and gains per seed), lines: the mean field (batch norm at the batch size, layer norm "
            "$\\sqrt{E[\\phi'^2]/E[\\phi^2]}$); dotted: ReLU's large-batch limit $\\sqrt{\\pi/(\\pi-1)}$ "
            "(study \\texttt{batchnorm\\_explosion}).")


@figure(width=DOUBLE_COLUMN, studies=(NORM_STUDY,), caption=rate_caption,
        report="Per-layer gradient factor at initialization against the batch size, batch norm (left) and layer "
               "norm (right), per activation, with the mean-field prediction and ReLU's large-batch limit "
               "sqrt(pi/(pi-1)) (study batchnorm_explosion).")
def norm_rate_vs_batch(runs: pd.DataFrame, layers: pd.DataFrame, *, width: Optional[float] = DOUBLE_COLUMN) -> Figure:
    """The measured factor per run against the batch size (log x), one colour per activation,
    one panel per norm; lines: ``batchnorm_explosion.predicted_factor`` over the batch sizes drawn."""
    from matplotlib import ticker

    from gradatlas.analysis.claims.catalog import batchnorm_explosion
    from gradatlas.analysis.figures import style

    frame = batchnorm_explosion.factors(_tables(runs, layers))
    if frame.empty:
        raise NoData(f"norm_rate_vs_batch: no {NORM_STUDY} runs")
    acts = levels.order("activation", frame["activation"].unique())
    batches = sorted(frame["batch_size"].unique())
    fig, axes = style.figure(1, 2, width, row_height=2.2)
    for ax, norm in zip(axes[0], ("batch", "layer")):
        rows = frame[frame["norm"] == norm]
        for act in acts:
            color = style.color("activation", act, acts)
            sel = rows[rows["activation"] == act]
            if sel.empty:
                continue
            per_seed = sel.groupby(["batch_size", "seed"])["measured"].apply(lambda f: math.exp(np.log(f).mean()))
            ax.plot(per_seed.index.get_level_values(0).to_numpy(float), per_seed.to_numpy(float), marker="o",
                    linestyle="none", color=color, alpha=0.7)
            ax.plot(batches, [batchnorm_explosion.predicted_factor(str(act), norm, int(b)) for b in batches],
                    color=color, linewidth=0.9)
        if norm == "batch":
            ax.axhline(batchnorm_explosion.LARGE_BATCH_LIMIT, color="0.5", linestyle=":", linewidth=0.8)
        ax.axhline(1.0, color="0.7", linestyle="-", linewidth=0.6)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("batch size")
        ax.set_title(f"{norm} norm", fontsize=8)
    axes[0][0].set_ylabel("per-layer norm factor toward the input")
    style.fig_legend(fig, [style.line_handle(str(a), style.color("activation", a, acts), "-", "o") for a in acts]
                     + [style.line_handle(r"$\sqrt{\pi/(\pi-1)}$", "0.5", ":")], ncol=len(acts) + 1)
    return fig

"""Criticality: the per-layer factor's phase diagram over (sigma_w^2, sigma_b^2), trainable depth
against xi_c (claim 16, studies criticality and trainable_depth), and where the factor crosses 1
along sigma_w^2 per activation (claim 4, study weight_crossing). What they draw is computed by
the claims' code (``criticality_data``)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from gradatlas.analysis.figures import criticality_data as data
from gradatlas.analysis.figures import levels
from gradatlas.analysis.figures.spec import DOUBLE_COLUMN, SINGLE_COLUMN, NoData, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Schoenholz et al. (2017): networks train to about this many xi_c.
SCHOENHOLZ_CONSTANT = 6.0
# A part over seeds decides from this many on (claims.parts.MIN_SEEDS, not imported: the claims import torch).
MIN_SEEDS = 4
# The diverging colour scale of the factor reaches at least this far from 1 on either side.
MIN_FACTOR_SPAN = 1.25
CURVE_POINTS = 60
MIN_LABEL_DECADES = 0.09  # tick labels of a single-column log axis closer than this overlap
LINE = "black"
MISS_COLOR = "#d55e00"  # outlines of cells the fitted boundary gets wrong (the palette's vermilion)


def _shown(values: np.ndarray) -> list[float]:
    """Grid values as ticks: 3 significant digits (gain^2 = 1.75001 is labelled 1.75; the style's
    tick labels print a tick's value)."""
    return [float(f"{v:.3g}") for v in values]


def _spaced(values: list[float], decades: float) -> set[float]:
    """The values labelled on a log axis: each at least ``decades`` above the last labelled one."""
    kept: list[float] = []
    for v in sorted(values):
        if not kept or math.log10(v / kept[-1]) >= decades:
            kept.append(v)
    return set(kept)


def _outlined(line):
    """A white halo under a line drawn over a heatmap, so that it reads on dark and light cells."""
    from matplotlib import patheffects

    line.set_path_effects([patheffects.Stroke(linewidth=line.get_linewidth() + 1.4, foreground="white"),
                           patheffects.Normal()])
    return line


def _none_caption(study: str, what: str) -> str:
    return f"{what} (study \\texttt{{{levels.tex(study)}}}): no runs at this scale."


def _ratios(crossings: list[data.Crossing]) -> str:
    """Measured over predicted crossing per crossing, '--' where one of the two is absent."""
    return ", ".join(f"{c.ratio:.2f}" if math.isfinite(c.ratio) else "--" for c in crossings)


def _failures(crossings: list[data.Crossing], tolerance: float, label) -> str:
    """A sentence naming the crossings that miss their prediction (``data.outside``)."""
    misses = [(c, data.outside(c, tolerance)) for c in crossings]
    misses = [(c, why) for c, why in misses if why]
    if not misses:
        return (f" Every measured crossing (geometric mean over seeds) lies within a factor $1 \\pm {tolerance:g}$ "
                f"of the predicted one.")
    listed = ", ".join(label(c.key) + ("" if why.startswith("measured /") else f" ({why})") for c, why in misses)
    return f" Outside a factor $1 \\pm {tolerance:g}$ of the prediction: {listed}."


# ------------------------------------------------------------------ (a) the factor over (sigma_w^2, sigma_b^2)

def _sigma_b2_label(value) -> str:
    return f"$\\sigma_b^2 = {float(value):.3g}$"


def criticality_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``criticality_phase``: the grid, the crossings and where they miss."""
    what = "Measured per-layer gradient factor of tanh MLPs at initialization over $(\\sigma_w^2, \\sigma_b^2)$"
    try:
        phase = data.phase_diagram(runs, layers)
    except NoData:
        return _none_caption(data.FACTOR_STUDY, what)
    biases = ", ".join(f"{c.key:.3g}" for c in phase.crossings)
    fixed = ", ".join(f"{c.fixed_point:.3g}" for c in phase.crossings)
    return (f"{what} (study \\texttt{{criticality}}, width {phase.width}, depth {phase.depth}, LeCun-normal weights "
            f"of variance $\\sigma_w^2/n$, biases $\\mathcal{{N}}(0, \\sigma_b^2)$; geometric mean over "
            f"{phase.seeds} seed{'s' if phase.seeds != 1 else ''}, the number in each cell). Colour: log scale "
            f"centred on 1 (blue shrinks, red grows toward the input). Solid line: the fixed point's critical line "
            f"$\\chi_1 = 1$ (at $\\sigma_b^2 = {biases}$: $\\sigma_w^2 = {fixed}$); dashed: where the length map "
            f"iterated from the input through {phase.depth} layers puts the crossing of 1; dots: the measured "
            f"crossing (geometric mean over seeds, bar min--max). Measured over iterated crossing at "
            f"$\\sigma_b^2 = {biases}$: {_ratios(phase.crossings)}."
            + _failures(phase.crossings, phase.tolerance, _sigma_b2_label))


@figure(width=DOUBLE_COLUMN, studies=(data.FACTOR_STUDY,), caption=criticality_caption,
        report="Phase diagram of tanh MLPs at initialization (study criticality): the measured per-layer gradient "
               "factor over (sigma_w^2, sigma_b^2), its value in each cell, on a log colour scale centred on 1; "
               "the fixed point's critical line chi_1 = 1, the crossing of 1 predicted by the length map iterated "
               "through the depth, and the measured crossing per sigma_b^2.")
def criticality_phase(runs: pd.DataFrame, layers: pd.DataFrame, *, width: Optional[float] = DOUBLE_COLUMN) -> Figure:
    """The measured per-layer factor over sigma_w^2 (x) and sigma_b^2 (y) with the predicted crossings.

    Cells: the geometric mean over seeds of each run's factor (``Tables.factor``), written in the
    cell, coloured on a log scale symmetric about 1. Over them: the critical line chi_1 = 1 of the
    fixed point (``theory.depth_scales.critical_line``), the iterated map's crossing of 1 along
    sigma_b^2 (claim 16's prediction) and the measured crossing per sigma_b^2 (dot: geometric mean
    over seeds, bar: min..max over seeds).
    """
    from matplotlib.colors import LogNorm

    from gradatlas.analysis.figures import plot, style
    from gradatlas.analysis.theory import depth_scales

    phase = data.phase_diagram(runs, layers)
    table = phase.cells.pivot(index="sigma_b2", columns=data.SIGMA_W2, values="factor").sort_index()
    xs, ys = table.columns.to_numpy(float), table.index.to_numpy(float)
    finite = table.to_numpy(float)[np.isfinite(table.to_numpy(float)) & (table.to_numpy(float) > 0)]
    span = max(MIN_FACTOR_SPAN, float(np.max(np.maximum(finite, 1 / finite)))) if finite.size else MIN_FACTOR_SPAN
    norm = LogNorm(vmin=1 / span, vmax=span)
    fig, axes = style.figure(1, 1, width, row_height=max(1.6, 0.34 * len(ys) + 0.7))
    ax = axes[0, 0]
    mesh = plot.cell_heatmap(ax, xs, ys, table.to_numpy(float), norm=norm, cmap=style.DIVERGING_CMAP,
                             text=lambda v: f"{v:.2f}", text_raise=0.25)
    (x_low, x_high), (y_low, y_high) = ax.get_xlim(), ax.get_ylim()
    line = depth_scales.critical_line("tanh", np.geomspace(1e-6, 1e3, 400))
    line = line[(line["sigma_b2"] <= y_high)]
    _outlined(ax.plot(line["sigma_w2"], line["sigma_b2"], color=LINE, linewidth=1.1)[0])
    b_grid = np.linspace(max(y_low, 0.0), y_high, 12)
    iterated_w = data.iterated_crossing_line(b_grid, float(xs.min()), float(xs.max()), phase.depth)
    _outlined(ax.plot(iterated_w, b_grid, color=LINE, linestyle="--", linewidth=1.1)[0])
    for crossing in phase.crossings:
        seen = crossing.measured[np.isfinite(crossing.measured)]
        if seen.size:
            bar = ax.plot([seen.min(), seen.max()], [crossing.key] * 2, color=LINE, linewidth=1.0)[0]
            _outlined(bar)
            ax.plot([crossing.measured_mean], [crossing.key], marker="o", color=LINE, markeredgecolor="white",
                    markersize=4.5, linestyle="none")
    ax.set_xlim(x_low, x_high)
    ax.set_ylim(y_low, y_high)
    ax.set_xticks(_shown(xs), [f"{v:g}" for v in _shown(xs)], fontsize=6)
    ax.set_yticks(_shown(ys), [f"{v:g}" for v in _shown(ys)], fontsize=6)
    ax.set_xlabel(r"weight variance $\sigma_w^2$")
    ax.set_ylabel(r"bias variance $\sigma_b^2$")
    bar = fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.05)
    bar.set_label("per-layer factor", fontsize=7)
    ticks = [t for t in (0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0) if 1 / span <= t <= span]
    bar.set_ticks(ticks, labels=[f"{t:g}" for t in ticks], minor=False)
    bar.ax.minorticks_off()
    style.fig_legend(fig, [style.line_handle(r"fixed point: $\chi_1 = 1$", LINE, "-"),
                           style.line_handle(f"iterated map, depth {phase.depth}: factor 1", LINE, "--"),
                           style.line_handle("measured crossing (seed range)", LINE, "-", "o")])
    return fig


# ------------------------------------------------------------------ (b) trainability over (sigma_w^2, depth)

def trainable_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``trainable_depth_phase``: the budget, the fitted c with its interval,
    the cells the fitted boundary gets wrong."""
    what = "Trainable depth of tanh MLPs against the correlation depth scale $\\xi_c$"
    try:
        td = data.trainability(runs, layers)
    except NoData:
        return _none_caption(data.TRAIN_STUDY, what)
    study_runs = levels.study_rows(runs, data.TRAIN_STUDY)
    budget = _budget(study_runs)
    cells = td.cells
    if math.isfinite(td.c):
        interval = (f" [{td.c_low:.3g}, {td.c_high:.3g}] ({levels.tex(td.c_interval)} over {td.c_seeds} seeds)"
                    if math.isfinite(td.c_low) and math.isfinite(td.c_high) else f" ({td.c_seeds} seed(s), no interval)")
        fitted = (f" and $c\\,\\xi_c$ with the fitted $c = {td.c:.3g}$" + interval
                  + " (solid; thin lines at the interval's ends).")
        wrong = cells[~cells["agrees"].astype(bool)]
        missed = ("" if wrong.empty else "; outlined, those that do not: " + ", ".join(
            f"$\\sigma_w^2 = {w:.3g}$ at depth {int(d)}" for w, d in zip(wrong[data.SIGMA_W2], wrong["depth"])))
        asks = (f"the claim asks for more than {100 * td.agreement:.0f}\\%" if td.c_seeds >= MIN_SEEDS else
                f"$c$ rests on {td.c_seeds} of {td.seeds} seeds: shown, not decided")
        agreement = (f" {int(cells['agrees'].sum())} of {len(cells)} cells train as depth $< c\\,\\xi_c$ says "
                     f"({asks}){missed}.")
    else:
        fitted = ". No fitted $c$: no $\\sigma_w^2$ whose trainable depth ends inside the depth grid."
        agreement = ""
    return (f"{what} (study \\texttt{{trainable\\_depth}}, width {td.width}, $\\sigma_b^2 = {td.sigma_b2:.3g}$, "
            f"{budget}): mean test skill over {td.seeds} seed{'s' if td.seeds != 1 else ''} in percent (0 = chance, "
            f"100 = perfect) per ($\\sigma_w^2$, depth) cell; a cell trains where it reaches "
            f"{100 * td.train_skill:.0f}. Curves: $\\xi_c$ (dotted), $6\\,\\xi_c$ (dash-dotted, Schoenholz et al.'s "
            f"constant){fitted}{agreement}")


def _budget(runs: pd.DataFrame) -> str:
    """The fixed training budget of ``runs`` as text (optimizer, learning rate, epochs or steps)."""
    parts = []
    for column, label in (("optimizer", "{}"), ("lr", "learning rate {}"), ("epochs", "{} epochs"),
                          ("max_steps", "at most {} steps")):
        if column in runs:
            values = runs[column].dropna().unique()
            if len(values) == 1 and not levels.missing(values[0]):
                parts.append(label.format(levels.tex(levels.fmt(values[0]))))
    return ", ".join(parts) if parts else "one fixed budget"


@figure(width=SINGLE_COLUMN, studies=(data.TRAIN_STUDY,), caption=trainable_caption,
        report="Trainability of tanh MLPs over (sigma_w^2, depth) after one fixed budget (study trainable_depth): "
               "mean test skill per cell in percent, with the correlation depth scale xi_c, Schoenholz et al.'s "
               "6 xi_c and c xi_c with the depth constant c fitted by claim 16; outlined, the cells whose training "
               "disagrees with depth < c xi_c.")
def trainable_depth_phase(runs: pd.DataFrame, layers: pd.DataFrame, *,
                          width: Optional[float] = SINGLE_COLUMN) -> Figure:
    """Mean skill over sigma_w^2 (x, log) and depth (y, log 2) with the depth scales drawn over it.

    Cells: the mean test skill over seeds (claim 16's ``trainability``), in percent in each cell.
    Curves: xi_c(sigma_w^2) at the study's sigma_b^2, 6 xi_c, and c xi_c with claim 16's fitted
    constant (its interval's ends as thin lines); cells whose training disagrees with depth < c xi_c
    are outlined.
    """
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    from gradatlas.analysis.figures import plot, style

    td = data.trainability(runs, layers)
    table = td.cells.pivot(index="depth", columns=data.SIGMA_W2, values="skill").sort_index()
    xs, ys = table.columns.to_numpy(float), table.index.to_numpy(float)
    fig, axes = style.figure(1, 1, width, row_height=max(1.6, 0.3 * len(ys) + 0.8))
    ax = axes[0, 0]
    mesh = plot.cell_heatmap(ax, xs, ys, table.to_numpy(float), norm=Normalize(0.0, 1.0), cmap=style.LIGHT_CMAP,
                             text=lambda v: f"{round(100 * v):d}", xlog=True, ylog=True)
    (x_low, x_high), (y_low, y_high) = ax.get_xlim(), ax.get_ylim()
    x_edges, y_edges = plot.cell_edges(xs, True), plot.cell_edges(ys, True)
    for _, cell in td.cells[~td.cells["agrees"].astype(bool)].iterrows():
        i, j = int(np.searchsorted(ys, cell["depth"])), int(np.searchsorted(xs, cell[data.SIGMA_W2]))
        ax.add_patch(Rectangle((x_edges[j], y_edges[i]), x_edges[j + 1] - x_edges[j], y_edges[i + 1] - y_edges[i],
                               fill=False, edgecolor=MISS_COLOR, linewidth=1.3))
    ws = np.geomspace(x_low, x_high, CURVE_POINTS)
    xi = data.xi_c_line(ws, td.sigma_b2)
    ax.plot(ws, xi, color=LINE, linestyle=":", linewidth=1.1)
    ax.plot(ws, SCHOENHOLZ_CONSTANT * xi, color=LINE, linestyle="-.", linewidth=1.0)
    handles = [style.line_handle(r"$\xi_c$", LINE, ":"), style.line_handle(r"$6\,\xi_c$", LINE, "-.")]
    if math.isfinite(td.c):
        _outlined(ax.plot(ws, td.c * xi, color=LINE, linewidth=1.3)[0])
        for end in (td.c_low, td.c_high):
            if math.isfinite(end) and end > 0:
                ax.plot(ws, end * xi, color=LINE, linewidth=0.5)
        handles.append(style.line_handle(f"$c\\,\\xi_c$, $c = {td.c:.2g}$", LINE, "-"))
    if not td.cells["agrees"].astype(bool).all():
        handles.append(style.line_handle("wrong side of $c\\,\\xi_c$", MISS_COLOR, "none", "s"))
        handles[-1].set_markerfacecolor("none")
    ax.set_xlim(x_low, x_high)
    ax.set_ylim(y_low, y_high)
    for axis, values in ((ax.xaxis, xs), (ax.yaxis, ys)):
        axis.set_major_locator(FixedLocator(_shown(values)))
        axis.set_minor_locator(NullLocator())
        axis.set_tick_params(labelsize=6)
    labelled = _spaced(_shown(xs), MIN_LABEL_DECADES)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}" if v in labelled else ""))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: levels.fmt(v)))
    ax.set_xlabel(r"weight variance $\sigma_w^2$")
    ax.set_ylabel("depth")
    bar = fig.colorbar(mesh, ax=ax, pad=0.01, fraction=0.06)
    bar.set_label("test skill", fontsize=7)
    bar.set_ticks([0, 0.5, 1], labels=["0", "50", "100"])
    style.fig_legend(fig, handles)
    return fig


# ------------------------------------------------------------------ (c) claim 4: the crossing per activation

def _activation_label(value) -> str:
    return levels.tex(value)


def weight_crossing_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``weight_crossing``: the sweep, the crossings and where they miss."""
    what = "Per-layer gradient factor at initialization against the weight variance $\\sigma_w^2$ per activation"
    try:
        sw = data.sweep(runs, layers)
    except NoData:
        return _none_caption(data.SWEEP_STUDY, what)
    return (f"{what} (study \\texttt{{weight\\_crossing}}, width {sw.width}, depth {sw.depth}, LeCun-normal weights "
            f"of variance $\\sigma_w^2/n$, zero biases; dots: mean over {sw.seeds} seed{'s' if sw.seeds != 1 else ''}, "
            f"band min--max). Lines: the length map iterated from the input through the depth, its profile fitted "
            f"as the measurement is. Lower panel: where the factor crosses 1, measured (dot: geometric mean over "
            f"seeds, bar min--max) and predicted (open diamond). Measured over predicted crossing: "
            + ", ".join(f"{_activation_label(c.key)} {c.ratio:.2f}" if math.isfinite(c.ratio)
                        else f"{_activation_label(c.key)} --" for c in sw.crossings) + "." + _failures(sw.crossings, sw.tolerance, _activation_label))


@figure(width=SINGLE_COLUMN, studies=(data.SWEEP_STUDY,), caption=weight_crossing_caption,
        report="Per-layer gradient factor at initialization against sigma_w^2 per activation (study weight_crossing, "
               "log-log), measured and as the length map iterated through the depth predicts; below, where it "
               "crosses 1, measured per seed against predicted.")
def weight_crossing(runs: pd.DataFrame, layers: pd.DataFrame, *, width: Optional[float] = SINGLE_COLUMN) -> Figure:
    """The measured factor (mean over seeds, band min..max) and the iterated map's factor (lines)
    against sigma_w^2 per activation, log-log, with the factor-1 line; below, per activation, the
    measured crossing of 1 (dot: geometric mean over seeds, bar: min..max) and the predicted one
    (open diamond)."""
    from matplotlib.figure import Figure as MplFigure

    from gradatlas.analysis.figures import plot, style

    sw = data.sweep(runs, layers)
    acts = [c.key for c in sw.crossings]
    fig = MplFigure(figsize=(width, 2.3 + 0.16 * len(acts) + 0.45), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2.3, 0.3 + 0.16 * len(acts)]})
    low, high = float(sw.runs[data.SIGMA_W2].min()), float(sw.runs[data.SIGMA_W2].max())
    ws = np.geomspace(low, high, CURVE_POINTS)
    for k, crossing in enumerate(sw.crossings):
        act = crossing.key
        color = style.color("activation", act, acts)
        rows = sw.runs[sw.runs["activation"] == act]
        stats = rows.groupby(data.SIGMA_W2)["factor"].agg(["mean", "min", "max"]).dropna()
        top.plot(stats.index, stats["mean"], marker="o", linestyle="none", color=color, markersize=3,
                 markeredgewidth=0, label=str(act))
        top.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.2, linewidth=0)
        top.plot(ws, data.predicted_factor_line(act, ws, int(rows["depth"].max())), color=color, linewidth=1.0)
        seen = crossing.measured[np.isfinite(crossing.measured)]
        if seen.size:
            bottom.plot([seen.min(), seen.max()], [k, k], color=color, linewidth=1.2)
            bottom.plot([crossing.measured_mean], [k], marker="o", color=color, linestyle="none", markersize=3.5)
        if math.isfinite(crossing.predicted):
            bottom.plot([crossing.predicted], [k], marker="D", markerfacecolor="none", color=color, linestyle="none",
                        markersize=4.5)
    top.axhline(1.0, color="0.5", linestyle="--", linewidth=0.8)
    top.set_xscale("log")
    top.set_yscale("log")
    top.set_ylabel("per-layer gradient factor")
    bottom.set_yticks(range(len(acts)), [str(a) for a in acts], fontsize=6)
    bottom.set_ylim(len(acts) - 0.5, -0.5)
    bottom.set_xscale("log")
    bottom.set_xlabel(r"weight variance $\sigma_w^2$ (LeCun-normal $\times$ gain$^2$)")
    bottom.set_title("where the factor crosses 1", fontsize=7, loc="left")
    bottom.grid(axis="y", color="0.9", linewidth=0.5)
    style.fig_legend(fig, [style.line_handle(str(a), style.color("activation", a, acts), "none", "o") for a in acts]
                     + [style.line_handle("iterated map", "0.3", "-"), style.line_handle("factor 1", "0.5", "--"),
                        style.line_handle("predicted crossing", "0.3", "none", "D")], ncol=3)
    fig.legends[-1].legend_handles[-1].set_markerfacecolor("none")
    return fig

"""Drawing helpers shared by the figures (matplotlib): seed means with bands, dodged points,
log axes ticked at the grid's values.

Aggregation, where a figure shows one value per point: the mean over seeds (rows sharing
every other coordinate), with a band from the minimum to the maximum over seeds where there
is more than one. Diverged runs (``status`` diverged) never enter a mean or a band: their
values are drawn as x marks (which do not stretch the axes), and non-finite values are dropped.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from gradatlas.analysis.figures import style
from gradatlas.analysis.figures.levels import fmt


def mean_line(ax: Axes, part: pd.DataFrame, x: str, y: str, *, label: str, color: Any,
              linestyle: str = "-", marker: Optional[str] = "o", band: bool = True, marks: bool = True) -> None:
    """One line: the mean of ``y`` per ``x`` over ``part``'s rows (seeds), shaded min..max.

    Aggregated here with one vectorized groupby rather than by seaborn's lineplot, which
    is two orders of magnitude slower on full-scale tables and would take the mean in log
    space on a log axis.
    """
    show_marks = marks
    if "status" in part:
        diverged = part["status"].astype(str) == "diverged"
        marks = part.loc[diverged, [x, y]].astype(float)
        marks = marks[np.isfinite(marks[y])]
        if show_marks and not marks.empty:
            # A diverged run is a mark, never part of a mean; added as a plain artist so that its
            # values (slopes of 5e4) do not stretch the data limits over the lines that matter.
            ax.add_artist(Line2D(marks[x].to_numpy(), marks[y].to_numpy(), linestyle="none", marker="x",
                                 color=color, markersize=3, label=f"_{label} diverged"))
        part = part[~diverged]
    values = part[[x, y]].astype(float)
    values = values[np.isfinite(values[y])]
    if values.empty:
        return
    stats = values.groupby(x, sort=True)[y].agg(["mean", "min", "max", "count"])
    xs = stats.index.to_numpy(dtype=float)
    if len(xs) > style.MAX_MARKERS:
        marker = None  # markers on a dense line only hide it
    ax.plot(xs, stats["mean"].to_numpy(), label=label, color=color, linestyle=linestyle, marker=marker,
            markeredgewidth=0)
    if band and (stats["count"] > 1).any():
        ax.fill_between(xs, stats["min"].to_numpy(), stats["max"].to_numpy(), color=color, alpha=0.15,
                        linewidth=0, label=f"_{label} range")


def dodged_points(ax: Axes, frame: pd.DataFrame, x: str, y: str, hue: str, order: Sequence[Any],
                  hue_order: Sequence[Any], palette: dict[Any, Any], floor: Optional[float] = None) -> int:
    """Per category of ``x`` (at 0, 1, ... as seaborn places them) and ``hue`` level, a point at
    the mean of ``y`` with a whisker min..max; hue levels side by side like seaborn's bars.

    With ``floor`` (e.g. float32's smallest normal number), values at or below it are an
    underflow, not a measurement: they are left out of the means and marked by a triangle at
    the bottom of the axis. Returns how many values were.
    """
    under = frame[y].astype(float) <= floor if floor is not None else pd.Series(False, index=frame.index)
    stats = frame[~under].groupby([hue, x])[y].agg(["mean", "min", "max"])
    width = 0.8 / max(len(hue_order), 1)
    floored = frame[under].groupby([hue, x]).size()
    for k, level in enumerate(hue_order):
        xs = np.arange(len(order)) - 0.4 + width * (k + 0.5)
        if level in floored.index.get_level_values(0):
            hits = floored.loc[level].reindex(order).fillna(0).to_numpy() > 0
            ax.plot(xs[hits], np.full(int(hits.sum()), 0.03), marker="v", linestyle="none", color=palette[level],
                    transform=ax.get_xaxis_transform(), label=f"_{level} underflow")
        if level not in stats.index.get_level_values(0):
            continue
        part = stats.loc[level].reindex(order)
        ax.vlines(xs, part["min"], part["max"], color=palette[level], linewidth=0.8, label=f"_{level} range")
        ax.plot(xs, part["mean"].to_numpy(), marker="o", linestyle="none", color=palette[level], label=str(level))
    ax.set_xticks(np.arange(len(order)), [str(v) for v in order])
    ax.set_xlim(-0.5, len(order) - 0.5)
    return int(under.sum())


def log_ticks_at(ax: Axes, values: Sequence[float]) -> None:
    """Log x axis with ticks at exactly the grid's values."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(values))))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: fmt(value)))



def cell_edges(centres: Sequence[float], log: bool = False) -> np.ndarray:
    """Edges of cells around sorted ``centres``: midpoints between neighbours (geometric ones with
    ``log``), the outer edges half a step beyond the outer centres (one centre: +-1/2, or x/y 2^1/2)."""
    c = np.log(np.asarray(centres, float)) if log else np.asarray(centres, float)
    if len(c) == 1:
        half = 0.5 * math.log(2.0) if log else 0.5
        edges = np.array([c[0] - half, c[0] + half])
    else:
        mid = 0.5 * (c[1:] + c[:-1])
        edges = np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])
    return np.exp(edges) if log else edges


# A cell's number is written vertically where it is wider than this share of its column: the
# width is that of DejaVu Sans digits (0.64 em each) and the 2-point outline; the column's is
# measured before the colour bar and the layout take about a fifth of the axes.
DIGIT_WIDTH, OUTLINE_POINTS, FINAL_AXES_SHARE = 0.64, 2.0, 0.8


def cell_heatmap(ax: Axes, xs: Sequence[float], ys: Sequence[float], values: np.ndarray, *, norm: Any, cmap: str,
                 text: Any, xlog: bool = False, ylog: bool = False, fontsize: float = 5.5,
                 text_raise: float = 0.0) -> Any:
    """A heatmap in data coordinates (cells centred on the grid's values, so that curves in the same
    coordinates can be drawn over it) with each finite cell's value written in it by ``text``
    (a function of the value), black on light cells, white on dark ones, raised by ``text_raise``
    of the cell's height above its centre (clear of marks drawn at the centre). ``values[i, j]``
    is the cell of ``ys[i]``, ``xs[j]``; NaN cells stay empty. Returns the QuadMesh (for a colour bar)."""
    import matplotlib as mpl
    from matplotlib import patheffects

    x_edges, y_edges = cell_edges(xs, xlog), cell_edges(ys, ylog)
    values = np.ma.masked_invalid(np.asarray(values, float))
    mesh = ax.pcolormesh(x_edges, y_edges, values, norm=norm, cmap=cmap, shading="flat", edgecolors="white",
                         linewidth=0.3)
    colormap = mpl.colormaps[cmap]
    # Each column's width in points (the axes' size before a colour bar takes its share): a
    # number wider than its cell is written vertically, else neighbouring numbers run together
    # where the grid is dense (trainable_depth's sigma_w^2 around 1).
    scaled = np.log(x_edges) if xlog else np.asarray(x_edges, float)
    axes_points = ax.get_position().width * ax.figure.get_figwidth() * 72.0
    column_points = np.diff(scaled) / (scaled[-1] - scaled[0]) * axes_points
    for (i, j), value in np.ndenumerate(values.filled(np.nan)):
        if not np.isfinite(value):
            continue
        r, g, b, _ = colormap(norm(value))
        light = 0.299 * r + 0.587 * g + 0.114 * b > 0.5
        low, high = (np.log(y_edges[i:i + 2]) if ylog else y_edges[i:i + 2])
        centre = (np.log(ys[i]) if ylog else ys[i]) + text_raise * (high - low)
        label = text(value)
        upright = len(label) * DIGIT_WIDTH * fontsize + OUTLINE_POINTS <= FINAL_AXES_SHARE * column_points[j]
        # Outlined in the cell's own colour: a curve drawn over the cell passes behind the number.
        ax.text(xs[j], math.exp(centre) if ylog else centre, label, ha="center", va="center", fontsize=fontsize,
                color="black" if light else "white", zorder=3, rotation=0 if upright else 90,
                path_effects=[patheffects.withStroke(linewidth=2.0, foreground=(r, g, b))])
    if xlog:
        ax.set_xscale("log")
    if ylog:
        ax.set_yscale("log")
    ax.set_xlim(x_edges[0], x_edges[-1])
    ax.set_ylim(y_edges[0], y_edges[-1])
    return mesh

"""The style: the one place that decides how every figure looks (matplotlib and seaborn).

seaborn's "ticks" style and "paper" context, the colour-blind-safe palette, figure grids at
the widths of a two-column paper (``spec.SINGLE_COLUMN``, ``spec.DOUBLE_COLUMN``), one legend
per figure. Colours are fixed per level (an activation, a model, a norm ...) so the same thing
has the same colour in every figure.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # never a display: figures are written to files by the workflow

import matplotlib as mpl  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from cycler import cycler  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from gradatlas.analysis.figures.levels import ORDERS  # noqa: E402
from gradatlas.analysis.figures.spec import DOUBLE_COLUMN, SINGLE_COLUMN  # noqa: E402

ROW_HEIGHT = 1.55  # inches per row of panels
PALETTE = "colorblind"
SEQUENTIAL = "viridis"  # ordered levels (layers), perceptually uniform and colour-blind safe
HEATMAP_CMAP = "viridis"
# A heatmap with black curves drawn over it: pale at 0, dark green at 1 (colour-blind safe).
LIGHT_CMAP = "YlGn"
DIVERGING_CMAP = "RdBu_r"  # a factor centred on 1: blue shrinks, red grows (on a log norm symmetric about 1)
MAX_MARKERS = 16  # lines with more points than this are drawn without markers
PDF_FONTS = {"pdf.fonttype": 42, "ps.fonttype": 42}  # TrueType, never Type 3
PNG_DPI = 150  # sharp on screen, about 100 KB a figure in the archive


def _style_rc() -> dict[str, Any]:
    """The rcParams every figure is drawn under."""
    rc: dict[str, Any] = {}
    rc.update(sns.axes_style("ticks"))
    rc.update(sns.plotting_context("paper", font_scale=0.85))
    rc.update({
        "axes.prop_cycle": cycler(color=sns.color_palette(PALETTE)),
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 8,
        "legend.frameon": False,
        "legend.fontsize": 7,
        "lines.linewidth": 1.2,
        "lines.markersize": 3.5,
        "figure.dpi": 150,
        "savefig.dpi": 300,
        **PDF_FONTS,
    })
    return rc


STYLE: dict[str, Any] = _style_rc()

# Palette positions of the activations, chosen so that those shown together differ clearly
# (the palette's pale yellow goes to the two that no data figure shows).
_ACTIVATION_COLORS = {"sigmoid": 0, "tanh": 1, "relu": 2, "leaky_relu": 3, "prelu": 4, "elu": 5, "selu": 6,
                      "silu": 7, "swish": 7, "gelu": 9, "linear": 8, "step": 8}


# Every other factor's levels, each one colour in every figure. The baseline level of a factor
# (no normalization, no clipping, the plain MLP, PyTorch's default init) is always grey; the
# initializers are coloured by the weight variance they give a square layer (sigma_w^2 = 1:
# LeCun, Xavier, orthogonal; 2: He), told apart within a group by line style (``linestyle``).
BASELINE = "0.45"
_SIGMA1, _SIGMA2 = "#1f78b4", "#e31a1c"
FACTOR_COLORS: dict[str, dict[Any, Any]] = {
    "init": {"default": BASELINE, "normal": "#a6761d", "lecun_normal": _SIGMA1, "xavier_normal": _SIGMA1,
             "xavier_uniform": _SIGMA1, "orthogonal": _SIGMA1, "he_normal": _SIGMA2, "he_uniform": _SIGMA2},
    "norm": {"none": BASELINE, "batch": "#6a3d9a", "layer": "#1b9e77"},
    "clip": {"none": BASELINE, "norm": "#1f78b4", "value": "#e31a1c"},
    "model": {"mlp": BASELINE, "resmlp": "#1b9e77", "rnn": "#b15928", "gru": "#6a3d9a", "lstm": "#ff7f00"},
}
FACTOR_LINESTYLES: dict[str, dict[Any, str]] = {
    "init": {"lecun_normal": "-", "xavier_normal": "--", "xavier_uniform": "-.", "orthogonal": ":",
             "he_normal": "-", "he_uniform": "--"},
}


def color(column: str, level: Any, levels: Sequence[Any]) -> Any:
    """The colour of ``level``: fixed for every known level of a factor (``_ACTIVATION_COLORS``,
    ``FACTOR_COLORS``), by position among ``levels`` for an ordered factor without fixed colours
    (depth, width)."""
    palette = sns.color_palette(PALETTE)
    if column == "activation" and level in _ACTIVATION_COLORS:
        return palette[_ACTIVATION_COLORS[level]]
    if level in FACTOR_COLORS.get(column, {}):
        return FACTOR_COLORS[column][level]
    known = ORDERS.get(column, [])
    index = known.index(level) if level in known else list(levels).index(level)
    return palette[index % len(palette)]


def linestyle(column: str, level: Any) -> str:
    """The line style of ``level`` (levels sharing a colour differ by it); solid otherwise."""
    return FACTOR_LINESTYLES.get(column, {}).get(level, "-")


def sequential(levels: Sequence[Any]) -> dict[Any, Any]:
    """A colour per ordered level (e.g. layers), along ``SEQUENTIAL``."""
    cmap = mpl.colormaps[SEQUENTIAL]
    # Stop short of the colormap's pale end, which vanishes on white.
    positions = np.linspace(0.0, 0.85, max(len(levels), 1))
    return {level: cmap(position) for level, position in zip(levels, positions)}


def draw_styled(function: Callable[..., Figure], *args: Any, **kwargs: Any) -> Figure:
    """``function(*args, **kwargs)`` under ``STYLE``, without touching the caller's global
    rcParams; its log axes get tidy tick labels (``tidy_log_axis``)."""
    with mpl.rc_context(STYLE):
        fig = function(*args, **kwargs)
        for ax in fig.axes:
            tidy_log_axis(ax.xaxis, ax.get_xscale(), ax.get_xlim())
            tidy_log_axis(ax.yaxis, ax.get_yscale(), ax.get_ylim())
        return fig


def share(axes: np.ndarray, *, x: bool = False, y: bool = False) -> None:
    """Share x and/or y limits across the visible panels, after drawing, and hide inner tick labels.

    Sharing from the start would make every artist added re-sync all sibling axes, which
    takes many seconds on full-scale grids; sharing once at the end gives the same limits.
    """
    grid = np.atleast_2d(np.asarray(axes, dtype=object))
    visible = [ax for ax in grid.flat if ax.axison]
    if len(visible) < 2:
        return
    first = visible[0]
    for ax in visible[1:]:
        if x:
            ax.sharex(first)
        if y:
            ax.sharey(first)
    first.autoscale_view(scalex=x, scaley=y)
    nrows, ncols = grid.shape
    for (row, col), ax in np.ndenumerate(grid):
        if not ax.axison:
            continue
        if y and col > 0:
            ax.tick_params(labelleft=False)
        if x and row < nrows - 1 and grid[row + 1, col].axison:
            ax.tick_params(labelbottom=False)


def wrapped(n: int, max_cols: int, width: Optional[float], **kwargs: Any) -> tuple[Figure, np.ndarray, list[Axes]]:
    """``n`` panels in rows of at most ``max_cols`` (the grid, and the used panels in order);
    the unused panels of the last row are hidden."""
    ncols = max(1, min(n, max_cols))
    fig, axes = figure(math.ceil(n / ncols), ncols, width, **kwargs)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    return fig, axes, list(axes.flat[:n])


def tick_label(value: float, _pos: Any = None) -> str:
    """A plain tick label: 0.5, 2, 300."""
    return f"{value:g}"


def tidy_log_axis(axis: Any, scale: str, limits: tuple[float, float]) -> None:
    """Tick labels of a log axis: under a decade, plain numbers on minor ticks (0.6, 0.8, not
    6x10^-1); over two decades, the powers of ten only. An axis ticked at fixed values (a
    ``FixedLocator``: the figure chose its ticks) keeps the labels its figure gave them."""
    if scale != "log" or isinstance(axis.get_major_locator(), FixedLocator):
        return
    low, high = sorted(limits)
    decades = math.log10(high / low) if low > 0 else math.inf
    if decades < 2.0:
        # Under a quarter decade every minor tick gets a label, up to one decade the even
        # ones, up to two the 2s and 5s.
        shown = None if decades < 0.25 else (2, 4, 6, 8) if decades < 1.0 else (2, 5)
        axis.set_major_formatter(FuncFormatter(tick_label))
        axis.set_minor_formatter(FuncFormatter(
            lambda value, _pos: tick_label(value)
            if shown is None or round(value / 10 ** math.floor(math.log10(value)), 6) in shown else ""))
    else:
        # At least a tick every few decades: the default leaves three ticks over thirty decades.
        if decades > 6 and math.isfinite(decades):
            axis.set_major_locator(LogLocator(base=10.0, numticks=8))
        axis.set_minor_formatter(NullFormatter())


def figure(nrows: int, ncols: int, width: Optional[float], *, row_height: float = ROW_HEIGHT,
           extra_height: float = 0.35, sharex: Any = False, sharey: Any = False) -> tuple[Figure, np.ndarray]:
    """A figure of ``nrows x ncols`` panels; ``width=None`` picks one or two columns by ``ncols``."""
    if width is None:
        width = SINGLE_COLUMN if ncols <= 2 else DOUBLE_COLUMN
    fig = Figure(figsize=(width, nrows * row_height + extra_height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    return fig, axes


def note(ax: Axes, text: str) -> None:
    """Say in a panel why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=7, color="0.4")
    # tick_params, not set_xticks: a panel may share its axis with panels that have data.
    ax.tick_params(left=False, labelleft=False, bottom=False, labelbottom=False)


def fig_legend(fig: Figure, handles: list[Any], *, title: Optional[str] = None, ncol: Optional[int] = None) -> None:
    """One legend for the whole figure, above the panels."""
    if handles:
        per_row = 4 if fig.get_figwidth() <= SINGLE_COLUMN + 0.1 else 7
        fig.legend(handles=handles, loc="outside upper center", ncol=ncol or min(len(handles), per_row), title=title,
                   fontsize=7, title_fontsize=7, handlelength=1.6, columnspacing=1.0)


def line_handle(label: str, color: Any = "0.3", linestyle: str = "-", marker: Optional[str] = None) -> Line2D:
    """A legend entry for a line (no data)."""
    return Line2D([], [], color=color, linestyle=linestyle, marker=marker, label=label)



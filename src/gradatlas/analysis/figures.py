"""The paper's figures: pure functions from summary DataFrames to matplotlib Figures.

Every figure function takes the tables it needs by their summary names (``runs``, ``layers``,
``timesteps``, ``steps``, ``theory``) plus keyword options, draws only what those tables
hold, and returns a :class:`matplotlib.figure.Figure`; nothing here reads a file. A study
whose rows are absent raises :class:`NoData` (the caller skips the figure or draws
:func:`no_data_figure`). ``FIGURES`` maps each figure's name to its function;
:func:`save_figure` writes a PDF with Type 42 (TrueType) fonts.

The style lives in one place (``STYLE``): seaborn's "ticks" style and "paper" context, the
colour-blind-safe palette, and figure widths for a two-column paper (``SINGLE_COLUMN``,
``DOUBLE_COLUMN``). Colours are fixed per level (an activation, a model, a norm ...) so the
same thing has the same colour in every figure.

Aggregation, where a figure shows one value per point: the mean over seeds (rows sharing
every other coordinate), with a band from the minimum to the maximum over seeds where there
is more than one. Diverged runs (``status`` diverged) never enter a mean or a band: their
values are drawn as x marks (which do not stretch the axes), and non-finite values are dropped.

Width. Each figure is drawn at the width it is printed (``PRINT_WIDTH``: one column or the
full text width of the paper) and the paper includes it at its natural size, never scaled;
``draw`` applies the width. ``captions`` writes each figure's caption from what the data
holds (the tasks, depths and diverged runs it shows).
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # never a display: figures are written to files by the workflow

import matplotlib as mpl  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from cycler import cycler  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator  # noqa: E402

from gradatlas.analysis.tables import escape_latex  # noqa: E402
from gradatlas.core.names import CLIPS, MODEL_NAMES, NORMS  # noqa: E402
from gradatlas.run import activations  # noqa: E402


class NoData(LookupError):
    """The tables hold no rows for what a figure shows (e.g. a study not run at this scale)."""


# ---------------------------------------------------------------------------------------
# Style: the one place that decides how every figure looks.

SINGLE_COLUMN = 3.4  # inches: one column of a two-column paper
DOUBLE_COLUMN = 7.0  # inches: the full text width
ROW_HEIGHT = 1.55  # inches per row of panels
PALETTE = "colorblind"
SEQUENTIAL = "viridis"  # ordered levels (layers), perceptually uniform and colour-blind safe
HEATMAP_CMAP = "viridis"
MAX_MARKERS = 16  # lines with more points than this are drawn without markers
PDF_FONTS = {"pdf.fonttype": 42, "ps.fonttype": 42}  # TrueType, never Type 3
PNG_DPI = 150  # sharp on screen, about 100 KB a figure in the archive


def _style_rc() -> dict[str, Any]:
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

# Stable level orders, so that each level keeps its colour across figures.
_ACTIVATION_ORDER = [name for name in activations.ACTIVATIONS if name != "swish"]
_ORDERS: dict[str, list[Any]] = {
    "activation": _ACTIVATION_ORDER,
    "model": list(MODEL_NAMES),
    "norm": list(NORMS),
    "clip": list(CLIPS),
    "init": ["default", "normal", "lecun_normal", "xavier_normal", "xavier_uniform", "he_normal",
             "he_uniform", "orthogonal"],
    "data": ["mnist1d", "mnist1d_seq", "adding", "copy"],
}

QUANTITY_LABELS = {
    "backprop_norm": r"backprop norm $\|\partial\ell/\partial z\|$",
    "weight_grad_norm": "weight-gradient norm",
    "act_mean": "activation mean",
    "act_std": "activation std",
    "dead_frac": "dead units (share)",
    "died_frac": "units dead since step 0 (share)",
    "underflow": "float32 underflow (1 = gradient 0 or subnormal)",
    "saturated_frac": "saturated units (share)",
    "weight_norm": "weight norm",
    "update_ratio": "update ratio",
    "prelu_slope": "PReLU slope",
    "hidden_grad_norm": r"gradient norm $\|\partial\ell/\partial h_t\|$",
    "hidden_norm": r"hidden-state norm $\|h_t\|$",
}
METRIC_LABELS = {"accuracy": "test accuracy", "mse": "test MSE"}
MODEL_LABELS = {"mlp": "plain MLP", "resmlp": "residual MLP", "rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}
# Factors a clipping study may sweep besides ``clip``, in the order they are looked for.
SWEPT_FACTORS = ("lr", "gain", "init_std", "clip_value", "length", "depth", "width")


def _styled(function: Callable[..., Figure]) -> Callable[..., Figure]:
    """Draw under ``STYLE`` without touching the caller's global rcParams."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with mpl.rc_context(STYLE):
            fig = function(*args, **kwargs)
            for ax in fig.axes:
                _tidy_log_axis(ax.xaxis, ax.get_xscale(), ax.get_xlim())
                _tidy_log_axis(ax.yaxis, ax.get_yscale(), ax.get_ylim())
            return fig

    return wrapper


def _share(axes: np.ndarray, *, x: bool = False, y: bool = False) -> None:
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


def _wrapped(n: int, max_cols: int, width: Optional[float], **kwargs: Any) -> tuple[Figure, np.ndarray, list[Axes]]:
    """``n`` panels in rows of at most ``max_cols`` (the grid, and the used panels in order);
    the unused panels of the last row are hidden."""
    ncols = max(1, min(n, max_cols))
    fig, axes = _figure(math.ceil(n / ncols), ncols, width, **kwargs)
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    return fig, axes, list(axes.flat[:n])


def _tick_label(value: float, _pos: Any = None) -> str:
    """A plain tick label: 0.5, 2, 300."""
    return f"{value:g}"


def _tidy_log_axis(axis: Any, scale: str, limits: tuple[float, float]) -> None:
    """Tick labels of a log axis: under a decade, plain numbers on minor ticks (0.6, 0.8, not
    6x10^-1); over two decades, the powers of ten only."""
    if scale != "log":
        return
    low, high = sorted(limits)
    decades = math.log10(high / low) if low > 0 else math.inf
    if decades < 2.0:
        # Under a quarter decade every minor tick gets a label, up to one decade the even
        # ones, up to two the 2s and 5s.
        shown = None if decades < 0.25 else (2, 4, 6, 8) if decades < 1.0 else (2, 5)
        axis.set_major_formatter(FuncFormatter(_tick_label))
        axis.set_minor_formatter(FuncFormatter(
            lambda value, _pos: _tick_label(value)
            if shown is None or round(value / 10 ** math.floor(math.log10(value)), 6) in shown else ""))
    else:
        axis.set_minor_formatter(NullFormatter())


def _figure(nrows: int, ncols: int, width: Optional[float], *, row_height: float = ROW_HEIGHT,
            extra_height: float = 0.35, sharex: Any = False, sharey: Any = False) -> tuple[Figure, np.ndarray]:
    """A figure of ``nrows x ncols`` panels; ``width=None`` picks one or two columns by ``ncols``."""
    if width is None:
        width = SINGLE_COLUMN if ncols <= 2 else DOUBLE_COLUMN
    fig = Figure(figsize=(width, nrows * row_height + extra_height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex, sharey=sharey)
    return fig, axes


def _order(column: str, values: Iterable[Any]) -> list[Any]:
    """Distinct values, known levels first in their canonical order, then the rest sorted."""
    values = list(pd.unique(pd.Series(list(values), dtype=object)))
    present = [v for v in values if not _missing(v)]
    known = _ORDERS.get(column, [])
    first = [v for v in known if v in present]
    rest = [v for v in present if v not in known]
    try:
        rest = sorted(rest)
    except TypeError:
        rest = sorted(rest, key=str)
    has_missing = any(_missing(v) for v in values)
    return first + rest + ([np.nan] if has_missing else [])


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


# Palette positions of the activations, chosen so that those shown together differ clearly
# (the palette's pale yellow goes to the two that no data figure shows).
_ACTIVATION_COLORS = {"sigmoid": 0, "tanh": 1, "relu": 2, "leaky_relu": 3, "prelu": 4, "elu": 5, "selu": 6,
                      "silu": 7, "swish": 7, "gelu": 9, "linear": 8, "step": 8}


def _color(column: str, level: Any, levels: Sequence[Any]) -> Any:
    """The colour of ``level``: fixed for known levels, by position among ``levels`` otherwise."""
    palette = sns.color_palette(PALETTE)
    known = _ORDERS.get(column, [])
    if column == "activation" and level in _ACTIVATION_COLORS:
        index = _ACTIVATION_COLORS[level]
    elif level in known:
        index = known.index(level)
    else:
        index = list(levels).index(level)
    return palette[index % len(palette)]


def _sequential(levels: Sequence[Any]) -> dict[Any, Any]:
    cmap = mpl.colormaps[SEQUENTIAL]
    # Stop short of the colormap's pale end, which vanishes on white.
    positions = np.linspace(0.0, 0.85, max(len(levels), 1))
    return {level: cmap(position) for level, position in zip(levels, positions)}


def _fmt(value: Any) -> str:
    """A level as text: integers without '.0', missing as 'default'."""
    if _missing(value):
        return "default"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def _quantity_label(quantity: str) -> str:
    return QUANTITY_LABELS.get(quantity, quantity.replace("_", " "))


def _metric_label(frame: pd.DataFrame) -> str:
    if "metric" in frame:
        metrics = [m for m in frame["metric"].dropna().unique()]
        if len(metrics) == 1:
            return METRIC_LABELS.get(str(metrics[0]), f"test {metrics[0]}")
    return "test metric"


def _is_accuracy(frame: pd.DataFrame) -> bool:
    return "metric" in frame and set(frame["metric"].dropna().astype(str)) == {"accuracy"}


def _note(ax: Axes, text: str) -> None:
    """Say in a panel why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=7, color="0.4")
    # tick_params, not set_xticks: a panel may share its axis with panels that have data.
    ax.tick_params(left=False, labelleft=False, bottom=False, labelbottom=False)


def _fig_legend(fig: Figure, handles: list[Any], *, title: Optional[str] = None, ncol: Optional[int] = None) -> None:
    """One legend for the whole figure, above the panels."""
    if handles:
        per_row = 4 if fig.get_figwidth() <= SINGLE_COLUMN + 0.1 else 7
        fig.legend(handles=handles, loc="outside upper center", ncol=ncol or min(len(handles), per_row), title=title,
                   fontsize=7, title_fontsize=7, handlelength=1.6, columnspacing=1.0)


def _line_handle(label: str, color: Any = "0.3", linestyle: str = "-", marker: Optional[str] = None) -> Line2D:
    return Line2D([], [], color=color, linestyle=linestyle, marker=marker, label=label)


# ---------------------------------------------------------------------------------------
# Selecting rows.

def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with categorical columns turned back into plain values (no unused levels)."""
    frame = frame.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(object)
    return frame


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}; has {', '.join(map(str, frame.columns))}")


def _rows(frame: Optional[pd.DataFrame], what: str, *, study: Optional[str] = None,
          quantity: Optional[str | Sequence[str]] = None, columns: Sequence[str] = ()) -> pd.DataFrame:
    """Rows of ``frame`` for ``study`` (and ``quantity``) with a finite ``value``.

    Raises:
        NoData: when there are no such rows.
        ValueError: when ``frame`` lacks a needed column.
    """
    if frame is None or len(frame) == 0:
        raise NoData(f"{what}: the table is empty")
    needed = [*(["study"] if study is not None else []), *(["quantity", "value"] if quantity is not None else []),
              *columns]
    _require_columns(frame, needed, what)
    mask = pd.Series(True, index=frame.index)
    if study is not None:
        mask &= frame["study"].astype(object) == study
    if quantity is not None:
        wanted = [quantity] if isinstance(quantity, str) else list(quantity)
        mask &= frame["quantity"].astype(object).isin(wanted)
    part = _plain(frame[mask])
    if quantity is not None:
        part = part[np.isfinite(part["value"].astype(float))]
    if part.empty:
        where = f"study {study!r}" if study is not None else "the table"
        also = f", quantity {quantity!r}" if quantity is not None else ""
        raise NoData(f"{what}: no rows for {where}{also}")
    return part


def _not_diverged(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of runs that did not diverge (a diverged run's accuracy is undefined)."""
    if "status" not in frame:
        return frame
    return frame[frame["status"].astype(str) != "diverged"]


def _last_step_rows(frame: pd.DataFrame, by: Sequence[str] = ("run",)) -> pd.DataFrame:
    """The rows at each run's last probed step (the largest ``step`` with a finite value)."""
    last = frame.groupby(list(by))["step"].transform("max")
    return frame[frame["step"] == last]


# ---------------------------------------------------------------------------------------
# Drawing helpers.

def _mean_line(ax: Axes, part: pd.DataFrame, x: str, y: str, *, label: str, color: Any,
               linestyle: str = "-", marker: Optional[str] = "o", band: bool = True) -> None:
    """One line: the mean of ``y`` per ``x`` over ``part``'s rows (seeds), shaded min..max.

    Aggregated here with one vectorized groupby rather than by seaborn's lineplot, which
    is two orders of magnitude slower on full-scale tables and would take the mean in log
    space on a log axis.
    """
    if "status" in part:
        diverged = part["status"].astype(str) == "diverged"
        marks = part.loc[diverged, [x, y]].astype(float)
        marks = marks[np.isfinite(marks[y])]
        if not marks.empty:
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
    if len(xs) > MAX_MARKERS:
        marker = None  # markers on a dense line only hide it
    ax.plot(xs, stats["mean"].to_numpy(), label=label, color=color, linestyle=linestyle, marker=marker,
            markeredgewidth=0)
    if band and (stats["count"] > 1).any():
        ax.fill_between(xs, stats["min"].to_numpy(), stats["max"].to_numpy(), color=color, alpha=0.15,
                        linewidth=0, label=f"_{label} range")


def _dodged_points(ax: Axes, frame: pd.DataFrame, x: str, y: str, hue: str, order: Sequence[Any],
                   hue_order: Sequence[Any], palette: dict[Any, Any]) -> None:
    """Per category of ``x`` (at 0, 1, ... as seaborn places them) and ``hue`` level, a point at
    the mean of ``y`` with a whisker min..max; hue levels side by side like seaborn's bars."""
    stats = frame.groupby([hue, x])[y].agg(["mean", "min", "max"])
    width = 0.8 / max(len(hue_order), 1)
    for k, level in enumerate(hue_order):
        if level not in stats.index.get_level_values(0):
            continue
        part = stats.loc[level].reindex(order)
        xs = np.arange(len(order)) - 0.4 + width * (k + 0.5)
        ax.vlines(xs, part["min"], part["max"], color=palette[level], linewidth=0.8, label=f"_{level} range")
        ax.plot(xs, part["mean"].to_numpy(), marker="o", linestyle="none", color=palette[level], label=str(level))
    ax.set_xticks(np.arange(len(order)), [str(v) for v in order])
    ax.set_xlim(-0.5, len(order) - 0.5)


def _log_ticks_at(ax: Axes, values: Sequence[float]) -> None:
    """Log x axis with ticks at exactly the grid's values."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(values))))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: _fmt(value)))


def no_data_figure(name: str, message: str) -> Figure:
    """A small placeholder figure that says why figure ``name`` has nothing to show."""
    with mpl.rc_context(STYLE):
        fig = Figure(figsize=(SINGLE_COLUMN, 1.2), layout="constrained")
        ax = fig.subplots()
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"{name}: no data at this scale\n{message}", ha="center", va="center",
                wrap=True, fontsize=7, transform=ax.transAxes)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PDF with Type 42 fonts (the paper's) and as a PNG beside it (for
    the README and the archive), each atomically (temporary file, then rename).

    Neither file carries a creation date, so the same figure gives the same bytes.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with mpl.rc_context(PDF_FONTS):
        _save_atomic(fig, path, format="pdf", metadata={"CreationDate": None, "Creator": "gradatlas"})
    _save_atomic(fig, path.with_suffix(".png"), format="png", dpi=PNG_DPI)
    return path


def _save_atomic(fig: Figure, path: Path, **kwargs: Any) -> None:
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        fig.savefig(tmp, **kwargs)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# ---------------------------------------------------------------------------------------
# The figures.

def _gallery_names() -> list[str]:
    """Every registered activation once (aliases such as swish = silu dropped)."""
    seen: set[Any] = set()
    names = []
    for name, constructor in activations.ACTIVATIONS.items():
        if constructor not in seen:
            seen.add(constructor)
            names.append(name)
    return names


@_styled
def activation_gallery(names: Optional[Sequence[str]] = None, *, z_min: float = -3.0, z_max: float = 3.0,
                       points: int = 601, ncols: int = 4, width: Optional[float] = DOUBLE_COLUMN) -> Figure:
    """Each activation phi (solid) and its closed-form derivative phi' (dashed), one panel each.

    Computed from ``gradatlas.run.activations`` (``forward`` and ``derivative``) on a grid of
    ``points`` values of z in [z_min, z_max]; a dotted line marks phi' = 1, the slope that
    passes a gradient back unchanged. Needs no data.
    """
    names = list(names) if names is not None else _gallery_names()
    if not names:
        raise NoData("activation_gallery: no activations to draw")
    nrows = math.ceil(len(names) / ncols)
    fig, axes = _figure(nrows, ncols, width, row_height=1.2, sharex=True, sharey=True)
    z = torch.linspace(z_min, z_max, points, dtype=torch.float64)
    palette = sns.color_palette(PALETTE)
    for ax, name in zip(axes.flat, names):
        module = activations.make_activation(name).to(torch.float64)
        with torch.no_grad():
            value = module(z).numpy()
            slope = module.derivative(z).numpy()
        ax.axhline(0.0, color="0.85", linewidth=0.6, zorder=0, label="_zero")
        ax.axhline(1.0, color="0.6", linewidth=0.6, linestyle=":", zorder=0, label="_unit slope")
        ax.plot(z.numpy(), value, color=palette[0], label="activation φ(z)")
        ax.plot(z.numpy(), slope, color=palette[1], linestyle="--", label="derivative φ′(z)")
        ax.set_title(name)
    for ax in axes.flat[len(names):]:
        ax.set_axis_off()
    for ax in axes[-1]:
        ax.set_xlabel("z")
    _fig_legend(fig, [_line_handle("activation φ(z)", palette[0]),
                      _line_handle("derivative φ′(z)", palette[1], "--"),
                      _line_handle("φ′ = 1", "0.6", ":")])
    return fig


@_styled
def backprop_norm_vs_layer(layers: pd.DataFrame, *, study: str = "depth_activation_init",
                           depth: Optional[float] = None, quantity: str = "backprop_norm",
                           max_cols: int = 4, width: Optional[float] = None) -> Figure:
    """The backpropagated gradient norm against layer (0 = input side), log y.

    One column per activation (at most ``max_cols``, then a further pair of rows): the upper
    row at initialization (step 0), the lower at each run's last probed step; one line per
    initializer (mean over seeds, band min..max), for the networks of ``depth`` (default: the
    deepest in the study). The head (output layer) is the last layer.
    """
    part = _rows(layers, "backprop_norm_vs_layer", study=study, quantity=quantity,
                 columns=("run", "step", "layer", "activation", "init", "depth"))
    depth = part["depth"].max() if depth is None else depth
    part = part[part["depth"] == depth]
    if part.empty:
        raise NoData(f"backprop_norm_vs_layer: no rows for depth {depth} in study {study!r}")
    acts = _order("activation", part["activation"])
    inits = _order("init", part["init"])
    first = part[part["step"] == 0]
    last = _last_step_rows(part)
    last = last[last["step"] > 0]
    ncols = min(len(acts), max_cols)
    fig, axes = _figure(2 * math.ceil(len(acts) / ncols), ncols, width)
    for ax in axes.flat:
        ax.set_axis_off()
    for index, act in enumerate(acts):
        block, col = divmod(index, ncols)
        for offset, (rows, when) in enumerate([(first, "initialization"), (last, "last probed step")]):
            ax = axes[2 * block + offset, col]
            ax.set_axis_on()
            panel = rows[rows["activation"] == act]
            for init in inits:
                _mean_line(ax, panel[panel["init"] == init], "layer", "value", label=str(init),
                           color=_color("init", init, inits))
            if panel.empty:
                _note(ax, "no rows")
            ax.set_title(f"{act}, {when}", fontsize=7)
            ax.set_xlabel("layer (0 = input)" if offset == 1 else "")
            ax.set_ylabel(f"{_quantity_label(quantity)}\n({when})" if col == 0 else "")
            ax.set_yscale("log")
    _share(axes, x=True, y=True)
    _fig_legend(fig, [_line_handle(str(i), _color("init", i, inits), marker="o") for i in inits],
                title=f"initializer (depth {_fmt(depth)})")
    return fig


@_styled
def accuracy_heatmap(runs: pd.DataFrame, *, study: str = "depth_activation_init", value: str = "test_metric",
                     annotate: Optional[bool] = None, ncols: int = 3, width: Optional[float] = None) -> Figure:
    """The final test metric over activation (rows) x initializer (columns), one panel per depth.

    Each cell is the mean of ``value`` over the seeds of that cell with a finite value
    (diverged runs without a test metric are left out); an empty cell means no such run.
    Accuracy uses a 0..1 colour scale, other metrics the data's range; the panel title
    gives the chance level from the runs' ``chance`` column.
    """
    part = _rows(runs, "accuracy_heatmap", study=study, columns=("activation", "init", "depth", value))
    part = _not_diverged(part)
    part = part[np.isfinite(part[value].astype(float))]
    if part.empty:
        raise NoData(f"accuracy_heatmap: no finite {value} in study {study!r}")
    acts = _order("activation", part["activation"])
    inits = _order("init", part["init"])
    depths = sorted(part["depth"].unique())
    table = part.pivot_table(index=["depth", "activation"], columns="init", values=value, aggfunc="mean")
    accuracy = _is_accuracy(part)
    vmin, vmax = (0.0, 1.0) if accuracy else (float(part[value].min()), float(part[value].max()))
    if annotate is None:
        annotate = len(acts) * len(inits) <= 30
    ncols = min(ncols, len(depths))
    nrows = math.ceil(len(depths) / ncols)
    fig, axes = _figure(nrows, ncols, width, row_height=0.2 * len(acts) + 0.9, sharex=False, sharey=False)
    label = _metric_label(part)
    chance = part["chance"].mean() if "chance" in part else np.nan
    for index, depth in enumerate(depths):
        ax = axes.flat[index]
        grid = table.loc[depth].reindex(index=acts, columns=inits)
        sns.heatmap(grid, ax=ax, vmin=vmin, vmax=vmax, cmap=HEATMAP_CMAP, annot=annotate, fmt=".2f",
                    annot_kws={"fontsize": 6}, cbar=False, linewidths=0.5, linecolor="white", square=False)
        title = f"depth {_fmt(depth)}"
        if np.isfinite(chance):
            title += f" (chance {chance:.2g})"
        ax.set_title(title)
        ax.set_xlabel("initializer")
        ax.set_ylabel("activation" if index % ncols == 0 else "")
        ax.tick_params(axis="both", labelsize=6)
        for tick in ax.get_xticklabels():
            tick.set(rotation=45, ha="right", rotation_mode="anchor")
        ax.tick_params(axis="y", rotation=0)
    for ax in axes.flat[len(depths):]:
        ax.set_axis_off()
    # One colour bar for all panels (they share the scale).
    fig.colorbar(axes.flat[0].collections[0], ax=list(axes.flat[:len(depths)]), label=label, shrink=0.9,
                 aspect=30)
    return fig


@_styled
def normalization_effect(runs: pd.DataFrame, layers: pd.DataFrame, *, study: str = "normalization",
                         step: int = 0, width: Optional[float] = None) -> Figure:
    """First-layer backprop norm (top, log y, at ``step``) and test accuracy (bottom) per norm.

    One column per depth, activations along x, one colour per normalization. Top: points
    (a bar has no natural base on a log axis); bottom: bars; both the mean over seeds with
    whiskers min..max. The dashed line in the bottom row is the chance level.
    """
    try:
        grads = _rows(layers, "normalization_effect", study=study, quantity="backprop_norm",
                      columns=("layer", "step", "activation", "norm", "depth"))
        grads = grads[(grads["layer"] == 0) & (grads["step"] == step)]
    except NoData:
        grads = pd.DataFrame()
    try:
        scores = _rows(runs, "normalization_effect", study=study,
                       columns=("activation", "norm", "depth", "test_metric"))
        scores = _not_diverged(scores)
        scores = scores[np.isfinite(scores["test_metric"].astype(float))]
    except NoData:
        scores = pd.DataFrame()
    if grads.empty and scores.empty:
        raise NoData(f"normalization_effect: no rows for study {study!r}")
    frames = [f for f in (grads, scores) if not f.empty]
    both = pd.concat([f[["activation", "norm", "depth"]] for f in frames])
    acts = _order("activation", both["activation"])
    norms = _order("norm", both["norm"])
    depths = sorted(both["depth"].unique())
    palette = {n: _color("norm", n, norms) for n in norms}
    fig, axes = _figure(2, len(depths), width, sharex=True, sharey="row")
    for col, depth in enumerate(depths):
        for row, (frame, y) in enumerate([(grads, "value"), (scores, "test_metric")]):
            ax = axes[row, col]
            panel = frame[frame["depth"] == depth] if not frame.empty else frame
            if panel.empty:
                _note(ax, "no rows")
                continue
            if row == 0:
                _dodged_points(ax, panel, "activation", y, "norm", acts, norms, palette)
            else:
                sns.barplot(data=panel, x="activation", y=y, hue="norm", order=acts, hue_order=norms,
                            palette=palette, estimator="mean", errorbar=("pi", 100), err_kws={"linewidth": 0.8},
                            ax=ax, legend=False)
                for container, norm in zip(ax.containers, norms):
                    container.set_label(str(norm))
            ax.set_xlabel("activation" if row == 1 else "")
        axes[0, col].set_title(f"depth {_fmt(depth)}")
    axes[0, 0].set_ylabel("first-layer backprop norm\n" + r"$\|\partial\ell/\partial z_0\|$" + f" (step {step})")
    axes[1, 0].set_ylabel(_metric_label(scores) if not scores.empty else "test metric")
    for ax in axes[0]:
        if ax.get_lines():
            ax.set_yscale("log")
    if not scores.empty and "chance" in scores:
        for col, depth in enumerate(depths):
            chance = scores.loc[scores["depth"] == depth, "chance"].mean()
            if np.isfinite(chance):
                axes[1, col].axhline(chance, color="0.4", linestyle="--", linewidth=0.8, label="_chance")
    _fig_legend(fig, [Patch(color=palette[n], label=str(n)) for n in norms], title="normalization")
    return fig


@_styled
def residual_vs_plain(runs: pd.DataFrame, *, study: str = "residual", max_cols: int = 2,
                      width: Optional[float] = None) -> Figure:
    """Test accuracy against depth (log x) for the plain and the residual MLP, one panel per activation.

    Lines are the mean over seeds (band min..max); the dashed line is the chance level.
    """
    part = _rows(runs, "residual_vs_plain", study=study, columns=("model", "activation", "depth", "test_metric"))
    part = part[np.isfinite(part["test_metric"].astype(float))]
    if part.empty:
        raise NoData(f"residual_vs_plain: no finite test_metric in study {study!r}")
    acts = _order("activation", part["activation"])
    models = _order("model", part["model"])
    fig, grid, panels = _wrapped(len(acts), max_cols, width, row_height=1.8)
    for index, (ax, act) in enumerate(zip(panels, acts)):
        panel = part[part["activation"] == act]
        for model in models:
            _mean_line(ax, panel[panel["model"] == model], "depth", "test_metric",
                       label=MODEL_LABELS.get(model, str(model)), color=_color("model", model, models))
        if "chance" in panel and np.isfinite(panel["chance"].mean()):
            ax.axhline(panel["chance"].mean(), color="0.4", linestyle="--", linewidth=0.8, label="_chance")
        _log_ticks_at(ax, part["depth"].unique())
        ax.set_title(str(act))
        ax.set_xlabel("depth (hidden layers)")
        ax.set_ylabel(_metric_label(part) if index % max_cols == 0 else "")
    _share(grid, y=True)
    _fig_legend(fig, [_line_handle(MODEL_LABELS.get(m, str(m)), _color("model", m, models), marker="o") for m in models]
                + [_line_handle("chance", "0.4", "--")])
    return fig


@_styled
def hidden_grad_vs_distance(timesteps: pd.DataFrame, *, study: str = "memory", quantity: str = "hidden_grad_norm",
                            width: Optional[float] = None) -> Figure:
    """‖∂ℓ/∂h_t‖ against the distance to the loss T − t (log y) for RNN, GRU and LSTM.

    T is the last time step of the run. Rows are data sets, columns sequence lengths; solid
    lines at initialization (step 0), dashed at each run's last probed step; mean over seeds.
    """
    part = _rows(timesteps, "hidden_grad_vs_distance", study=study, quantity=quantity,
                 columns=("run", "step", "t", "model", "data", "length"))
    part = part.copy()
    part["distance"] = part.groupby(["run", "step"])["t"].transform("max") - part["t"]
    datas = _order("data", part["data"])
    lengths = sorted(part["length"].dropna().unique()) or [np.nan]
    models = _order("model", part["model"])
    first = part[part["step"] == 0]
    last = _last_step_rows(part)
    last = last[last["step"] > 0]
    fig, axes = _figure(len(datas), len(lengths), width)
    for r, data in enumerate(datas):
        for c, length in enumerate(lengths):
            ax = axes[r, c]
            empty = True
            for rows, style, when in ((first, "-", "init"), (last, "--", "last step")):
                cell = rows[(rows["data"] == data) & ((rows["length"] == length) | _missing(length))]
                for model in models:
                    lines = cell[cell["model"] == model]
                    empty &= lines.empty
                    _mean_line(ax, lines, "distance", "value", label=f"{MODEL_LABELS.get(model, model)}, {when}",
                               color=_color("model", model, models), linestyle=style, marker=None)
            if empty:
                _note(ax, "no rows")
            ax.set_yscale("log")
            ax.set_title(f"{data}, T = {_fmt(length)}")
            ax.set_xlabel("distance T − t" if r == len(datas) - 1 else "")
            ax.set_ylabel(_quantity_label(quantity) if c == 0 else "")
    _share(axes, y=True)
    # A seed whose gradient underflows to 0 pulls the min..max band down to the smallest
    # float: keep the axis to a decade below the lowest mean line instead.
    means = [y for ax in axes.flat for line in ax.get_lines() for y in np.asarray(line.get_ydata(), dtype=float)]
    positive = [y for y in means if np.isfinite(y) and y > 0]
    if positive:
        for ax in axes.flat:
            ax.set_ylim(bottom=max(ax.get_ylim()[0], min(positive) / 10))
    handles = [_line_handle(MODEL_LABELS.get(m, str(m)), _color("model", m, models)) for m in models]
    handles += [_line_handle("initialization", "0.3", "-"), _line_handle("last probed step", "0.3", "--")]
    _fig_legend(fig, handles)
    return fig


def _swept_factor(frame: pd.DataFrame) -> Optional[str]:
    """The first of ``SWEPT_FACTORS`` that takes more than one value in ``frame``."""
    for factor in SWEPT_FACTORS:
        if factor in frame and frame[factor].dropna().nunique() > 1:
            return factor
    return None


@_styled
def clipping(runs: pd.DataFrame, steps: Optional[pd.DataFrame] = None, *,
             studies: Sequence[str] = ("clipping_mlp", "clipping_rnn"), width: Optional[float] = None) -> Figure:
    """Training loss curves (top) and the share of diverged runs (bottom) with and without clipping.

    One column per study. Top: every run at the largest value of the study's swept factor
    (e.g. the largest learning rate or recurrent gain, where exploding is worst), one thin
    line per run coloured by the clipping mode, log y; an x marks a diverged run's last
    finite loss. Bottom: the share of runs with status ``diverged`` per swept value and
    clipping mode (``failed`` runs are left out of the share).
    """
    if runs is None or len(runs) == 0:
        raise NoData("clipping: the runs table is empty")
    _require_columns(runs, ("run", "study", "clip", "status"), "clipping")
    part = _plain(runs[runs["study"].astype(object).isin(list(studies))])
    if part.empty:
        raise NoData(f"clipping: no rows for studies {', '.join(studies)}")
    present = [s for s in studies if s in set(part["study"])]
    clips = _order("clip", part["clip"])
    palette = {c: _color("clip", c, clips) for c in clips}
    fig, axes = _figure(2, len(present), width, row_height=1.6)
    curves = pd.DataFrame()
    if steps is not None and len(steps):
        _require_columns(steps, ("run", "step", "loss"), "clipping (steps)")
        curves = _plain(steps[steps["run"].astype(object).isin(set(part["run"]))])
    for col, study in enumerate(present):
        rows = part[part["study"] == study]
        factor = _swept_factor(rows)
        # Loss curves where exploding is worst: the largest value of the swept factor.
        top = axes[0, col]
        hardest = rows if factor is None else rows[rows[factor] == rows[factor].max()]
        title = study if factor is None else f"{study}: {factor} = {_fmt(rows[factor].max())}"
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
        else:
            _note(top, "no step tables")
        top.set_title(title)
        top.set_xlabel("step")
        top.set_ylabel("training loss" if col == 0 else "")
        # Divergence share per swept value and clipping mode.
        bottom = axes[1, col]
        counted = rows[rows["status"].isin(["ok", "diverged"])].copy()
        counted["diverged"] = (counted["status"] == "diverged").astype(float)
        x = factor if factor is not None else "study"
        order = sorted(counted[x].unique()) if factor is not None else [study]
        counted["level"] = counted[x].map(_fmt)
        if counted.empty:
            _note(bottom, "no finished runs")
        else:
            sns.barplot(data=counted, x="level", y="diverged", hue="clip", order=[_fmt(v) for v in order],
                        hue_order=clips, palette=palette, estimator="mean", errorbar=None, ax=bottom, legend=False)
            for container, clip in zip(bottom.containers, clips):
                container.set_label(str(clip))
                # A share of 0 is a bar of no height: print the values so it reads as 0, not missing.
                bottom.bar_label(container, fmt="%.2g", fontsize=6, padding=1)
        bottom.set_ylim(0, 1.05)
        bottom.set_xlabel(factor if factor is not None else "")
        bottom.set_ylabel("diverged (share of runs)" if col == 0 else "")
    _fig_legend(fig, [Patch(color=palette[c], label=str(c)) for c in clips] + [
        _line_handle("diverged", "0.3", "none", "x")], title="clipping")
    return fig


DEAD_VIEWS = (("dead_frac", "first", "dead at initialization (step 0)"),
              ("died_frac", "last", "died during training (last probe)"))


@_styled
def dead_units_vs_lr(layers: pd.DataFrame, *, study: str = "dying_relu", max_cols: int = 2,
                     width: Optional[float] = None) -> Figure:
    """Share of dead units against the learning rate (log x): one panel per bias init and view.

    The views (``DEAD_VIEWS``, those the data holds): ``dead_frac`` at step 0 (dead at
    initialization, e.g. from a negative bias) and ``died_frac`` at the last probe (died during
    training). Without ``died_frac`` (older summaries), ``dead_frac`` at the last probe. A
    run's value is the mean over its hidden layers; lines per activation are the mean over
    seeds (band min..max), diverged runs drawn as marks.
    """
    part = _rows(layers, "dead_units_vs_lr", study=study, quantity=("dead_frac", "died_frac"),
                 columns=("run", "step", "activation", "lr", "bias"))
    views = [v for v in DEAD_VIEWS if (part["quantity"] == v[0]).any()]
    if len(views) == 1 and views[0][0] == "dead_frac":
        views = [("dead_frac", "last", "dead units (last probe)")]
    extra = {"status": ("status", "first")} if "status" in part else {}
    per_view = []
    for quantity, when, title in views:
        rows = part[part["quantity"] == quantity]
        rows = rows[rows["step"] == 0] if when == "first" else _last_step_rows(rows)
        per_run = rows.groupby("run", as_index=False).agg(
            value=("value", "mean"), activation=("activation", "first"), lr=("lr", "first"),
            bias=("bias", "first"), **extra)
        per_view.append((title, per_run))
    every = pd.concat([v[1] for v in per_view])
    acts = _order("activation", every["activation"])
    biases = _order("bias", every["bias"])
    cols = min(len(biases), max_cols)
    fig, grid = _figure(len(per_view) * math.ceil(len(biases) / cols), cols, width, row_height=1.6)
    for ax in grid.flat:
        ax.set_axis_off()
    for v, (title, per_run) in enumerate(per_view):
        for index, bias in enumerate(biases):
            block, col = divmod(index, cols)
            ax = grid[len(per_view) * block + v, col]
            ax.set_axis_on()
            panel = per_run[per_run["bias"].isna()] if _missing(bias) else per_run[per_run["bias"] == bias]
            for act in acts:
                _mean_line(ax, panel[panel["activation"] == act], "lr", "value", label=str(act),
                           color=_color("activation", act, acts))
            _log_ticks_at(ax, every["lr"].unique())
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"bias init {_fmt(bias)}: {title}", fontsize=7)
            ax.set_xlabel("learning rate")
            ax.set_ylabel("share of units\n(mean over layers)" if col == 0 else "")
    _fig_legend(fig, [_line_handle(str(a), _color("activation", a, acts), marker="o") for a in acts]
                + [_line_handle("diverged run", "0.3", "none", "x")], title="activation")
    return fig


@_styled
def prelu_slope(layers: pd.DataFrame, *, study: Optional[str] = "dying_relu", lr: Optional[float] = None,
                max_cols: int = 2, width: Optional[float] = None) -> Figure:
    """PReLU's learned negative slope against the training step (symlog x), one line per layer.

    One panel per bias init, at learning rate ``lr`` (default: the largest in the data, where
    units die most); mean over seeds (band min..max). Layers are coloured from input
    (dark) to output (light).
    """
    part = _rows(layers, "prelu_slope", study=study, quantity="prelu_slope", columns=("step", "layer"))
    if "lr" in part and part["lr"].notna().any():
        lr = part["lr"].max() if lr is None else lr
        part = part[part["lr"] == lr]
        if part.empty:
            raise NoData(f"prelu_slope: no rows at lr {lr}")
    biases = _order("bias", part["bias"]) if "bias" in part else [np.nan]
    layer_levels = sorted(part["layer"].unique())
    colors = _sequential(layer_levels)
    fig, grid, panels = _wrapped(len(biases), max_cols, width, row_height=1.8)
    for index, (ax, bias) in enumerate(zip(panels, biases)):
        if "bias" not in part:
            panel = part
        else:
            panel = part[part["bias"].isna()] if _missing(bias) else part[part["bias"] == bias]
        for layer in layer_levels:
            _mean_line(ax, panel[panel["layer"] == layer], "step", "value", label=f"layer {layer}",
                       color=colors[layer], marker="o")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.xaxis.set_major_formatter(FuncFormatter(_tick_label))
        title = f"bias init {_fmt(bias)}"
        if lr is not None:
            title += f", lr {_fmt(lr)}"
        ax.set_title(title)
        ax.set_xlabel("training step")
        ax.set_ylabel("learned PReLU slope" if index % max_cols == 0 else "")
    _share(grid, y=True)
    _fig_legend(fig, [_line_handle(f"layer {layer}", colors[layer], marker="o") for layer in layer_levels])
    return fig


@_styled
def selu_statistics(layers: pd.DataFrame, *, study: str = "selu", step: int = 0,
                    width: Optional[float] = SINGLE_COLUMN) -> Figure:
    """Activation mean (left) and standard deviation (right, log y) against layer at ``step``.

    One line per activation (mean over seeds, band min..max); dotted lines mark the
    self-normalizing targets, mean 0 and std 1.
    """
    part = _rows(layers, "selu_statistics", study=study, quantity=("act_mean", "act_std"),
                 columns=("step", "layer", "activation"))
    part = part[part["step"] == step]
    if part.empty:
        raise NoData(f"selu_statistics: no rows at step {step} in study {study!r}")
    acts = _order("activation", part["activation"])
    fig, axes = _figure(1, 2, width, row_height=1.8, sharex=True)
    for ax, quantity, target in ((axes[0, 0], "act_mean", 0.0), (axes[0, 1], "act_std", 1.0)):
        rows = part[part["quantity"] == quantity]
        ax.axhline(target, color="0.5", linestyle=":", linewidth=0.8, label="_target")
        for act in acts:
            _mean_line(ax, rows[rows["activation"] == act], "layer", "value", label=str(act),
                       color=_color("activation", act, acts))
        if quantity == "act_std":
            ax.set_yscale("log")
        ax.set_xlabel("layer (0 = input)")
        ax.set_ylabel(f"{_quantity_label(quantity)} (step {step})")
    _fig_legend(fig, [_line_handle(str(a), _color("activation", a, acts), marker="o") for a in acts]
                + [_line_handle("target", "0.5", ":")])
    return fig


@_styled
def theory_vs_measurement(theory: pd.DataFrame, *, study: Optional[str] = "meanfield",
                          width: Optional[float] = SINGLE_COLUMN) -> Figure:
    """Mean-field prediction against measurement of the per-layer gradient factor.

    ``theory`` has columns ``activation``, ``sigma_w2`` (or ``gain``), ``predicted_factor``
    and ``measured_factor`` (one row per run or per cell); where it has a ``study`` column,
    only the rows of ``study`` are drawn (``None``: all). Left: both factors against the
    weight variance (line: predicted, mean per x; markers: measured, mean over rows);
    right: measured against predicted, one point per row, with the identity line; log axes.
    """
    if theory is None or len(theory) == 0:
        raise NoData("theory_vs_measurement: the theory table is empty")
    x = "sigma_w2" if "sigma_w2" in theory else "gain"
    _require_columns(theory, ("activation", x, "predicted_factor", "measured_factor"), "theory_vs_measurement")
    part = _plain(theory)
    if study is not None and "study" in part:
        part = part[part["study"] == study]
        if part.empty:
            raise NoData(f"theory_vs_measurement: no rows for study {study!r}")
    part = part[np.isfinite(part["predicted_factor"].astype(float)) & np.isfinite(part["measured_factor"].astype(float))
                & np.isfinite(part[x].astype(float))]
    if part.empty:
        raise NoData("theory_vs_measurement: no finite predicted and measured factors")
    acts = _order("activation", part["activation"])
    fig, axes = _figure(1, 2, width, row_height=1.9)
    left, right = axes[0]
    for act in acts:
        rows = part[part["activation"] == act]
        color = _color("activation", act, acts)
        _mean_line(left, rows, x, "predicted_factor", label=f"{act} predicted", color=color, marker=None, band=False)
        _mean_line(left, rows, x, "measured_factor", label=f"{act} measured", color=color, linestyle="none",
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
    _fig_legend(fig, [_line_handle(str(a), _color("activation", a, acts), marker="o") for a in acts]
                + [_line_handle("predicted", "0.3", "-"), _line_handle("measured", "0.3", "none", "o"),
                   _line_handle("identity", "0.5", "--")], ncol=3)
    return fig


# The theories past the mean-field MLP (``theory.beyond_meanfield_rows``), in drawing order.
THEORY_LABELS = {"batchnorm_mlp": "batch norm MLP", "residual_mlp": "residual MLP",
                 "rnn_time": "vanilla RNN (per time step)"}
_ACTIVATION_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


@_styled
def theory_beyond_meanfield(theory: pd.DataFrame, *, width: Optional[float] = SINGLE_COLUMN) -> Figure:
    """Predicted against measured gradient factor at initialization past the plain MLP.

    ``theory`` is the theory table (``theory.theory_table``); its rows whose ``theory`` is a
    key of ``THEORY_LABELS`` are drawn, one point per run: colour by theory, marker by
    activation, log axes, the identity line. Each legend entry gives the number of runs and the
    median relative error |measured - predicted| / predicted of that theory.
    """
    if theory is None or len(theory) == 0 or "theory" not in theory:
        raise NoData("theory_beyond_meanfield: the theory table has no batch-norm, residual or RNN rows")
    _require_columns(theory, ("theory", "activation", "predicted_factor", "measured_factor"),
                     "theory_beyond_meanfield")
    part = _plain(theory)
    part = part[part["theory"].isin(list(THEORY_LABELS))]
    part = part[np.isfinite(part["predicted_factor"].astype(float)) & np.isfinite(part["measured_factor"].astype(float))
                & (part["predicted_factor"].astype(float) > 0) & (part["measured_factor"].astype(float) > 0)]
    if part.empty:
        raise NoData("theory_beyond_meanfield: no finite batch-norm, residual or RNN predictions with measurements")
    kinds = [k for k in THEORY_LABELS if (part["theory"] == k).any()]
    acts = _order("activation", part["activation"])
    markers = {act: _ACTIVATION_MARKERS[i % len(_ACTIVATION_MARKERS)] for i, act in enumerate(acts)}
    palette = sns.color_palette(PALETTE)
    colors = {kind: palette[i] for i, kind in enumerate(THEORY_LABELS)}
    fig, axes = _figure(1, 1, width, row_height=2.3)
    ax = axes[0, 0]
    handles = []
    for kind in kinds:
        rows = part[part["theory"] == kind]
        for act in acts:
            sel = rows[rows["activation"] == act]
            if len(sel):
                ax.plot(sel["predicted_factor"].to_numpy(float), sel["measured_factor"].to_numpy(float),
                        marker=markers[act], linestyle="none", color=colors[kind], label=f"{kind} {act}")
        error = (rows["measured_factor"].astype(float) / rows["predicted_factor"].astype(float) - 1).abs().median()
        handles.append(_line_handle(f"{THEORY_LABELS[kind]} (n={len(rows)}, median error {100 * error:.0f}%)",
                                    colors[kind], "none", "o"))
    values = np.concatenate([part["predicted_factor"].to_numpy(float), part["measured_factor"].to_numpy(float)])
    span = np.array([values.min() / 1.2, values.max() * 1.2])
    ax.plot(span, span, color="0.5", linestyle="--", linewidth=0.8, label="identity")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("predicted per-layer (per-step) factor")
    ax.set_ylabel("measured factor")
    _fig_legend(fig, handles, ncol=1)
    # Markers (activations, hollow: they carry no theory colour) and the identity in the panel.
    shapes = [Line2D([], [], color="0.3", marker=markers[a], markerfacecolor="none", linestyle="none", label=str(a))
              for a in acts]
    ax.legend(handles=[*shapes, _line_handle("identity", "0.5", "--")], loc="lower right", fontsize=7)
    return fig


# Figure name -> function. Names say what each shows; they are also the PDF file stems.
FIGURES: dict[str, Callable[..., Figure]] = {
    "activation_gallery": activation_gallery,
    "backprop_norm_vs_layer": backprop_norm_vs_layer,
    "accuracy_heatmap": accuracy_heatmap,
    "normalization_effect": normalization_effect,
    "residual_vs_plain": residual_vs_plain,
    "hidden_grad_vs_distance": hidden_grad_vs_distance,
    "clipping": clipping,
    "dead_units_vs_lr": dead_units_vs_lr,
    "prelu_slope": prelu_slope,
    "selu_statistics": selu_statistics,
    "theory_vs_measurement": theory_vs_measurement,
    "theory_beyond_meanfield": theory_beyond_meanfield,
}

# The width each figure is printed at in the paper (figure* = DOUBLE_COLUMN, figure =
# SINGLE_COLUMN); the paper includes every figure at its natural size, so this is the one
# place that decides it (tests check the paper's floats agree).
PRINT_WIDTH: dict[str, float] = {
    "activation_gallery": DOUBLE_COLUMN,
    "backprop_norm_vs_layer": DOUBLE_COLUMN,
    "accuracy_heatmap": DOUBLE_COLUMN,
    "normalization_effect": DOUBLE_COLUMN,
    "residual_vs_plain": SINGLE_COLUMN,
    "hidden_grad_vs_distance": DOUBLE_COLUMN,
    "clipping": SINGLE_COLUMN,
    "dead_units_vs_lr": SINGLE_COLUMN,
    "prelu_slope": SINGLE_COLUMN,
    "selu_statistics": SINGLE_COLUMN,
    "theory_vs_measurement": SINGLE_COLUMN,
    "theory_beyond_meanfield": SINGLE_COLUMN,
}


def draw(name: str, **data: Any) -> Figure:
    """Figure ``name`` at its print width, from the tables its signature asks for (extra tables
    are ignored); a study without rows gives ``no_data_figure``."""
    function = FIGURES[name]
    wanted = inspect.signature(function).parameters
    kwargs = {key: data[key] for key in wanted if key in data}
    if "width" in wanted:
        kwargs["width"] = PRINT_WIDTH[name]
    try:
        return function(**kwargs)
    except NoData as err:
        return no_data_figure(name, str(err))


# ---------------------------------------------------------------------------------------
# Captions: what each figure shows, said from the data it is drawn from.

def _tex(text: Any) -> str:
    return escape_latex(text)


def _study(frame: Optional[pd.DataFrame], study: str) -> pd.DataFrame:
    if frame is None or frame.empty or "study" not in frame:
        return pd.DataFrame()
    return frame[frame["study"].astype(str) == study]


def _listing(values: Iterable[Any]) -> str:
    items = [_tex(_fmt(v)) for v in values]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _diverged_text(runs: pd.DataFrame) -> str:
    k = int((runs["status"].astype(str) == "diverged").sum()) if "status" in runs else 0
    if not k:
        return " No run diverged."
    return f" {k} run{'s' if k != 1 else ''} diverged: left out of the means, drawn as x."


def captions(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> dict[str, str]:
    """The caption of every figure of ``FIGURES`` (LaTeX source), naming only what the tables hold."""
    out: dict[str, str] = {
        "activation_gallery": "The activations (solid) and their derivatives (dashed).",
    }
    depth_runs = _study(runs, "depth_activation_init")
    depth = _fmt(depth_runs["depth"].max()) if not depth_runs.empty else "--"
    out["backprop_norm_vs_layer"] = (
        r"Backpropagated gradient norm $\lVert\partial\ell/\partial z_l\rVert$ against layer $l$ (0 = input "
        f"side) at initialization and at the last probed step, per activation and initializer (study "
        f"\\texttt{{depth\\_activation\\_init}}, depth {depth}; mean over seeds, band min--max). Log scale."
        + (_diverged_text(depth_runs) if not depth_runs.empty else ""))
    depths = sorted(depth_runs["depth"].unique()) if not depth_runs.empty else []
    out["accuracy_heatmap"] = (
        "Final test accuracy (mean over the seeds that did not diverge) by activation and initializer, "
        + (f"one panel per depth ({_listing(depths)})." if depths else "no runs at this scale.")
        + (_diverged_text(depth_runs) if not depth_runs.empty else ""))
    norm_runs = _study(runs, "normalization")
    out["normalization_effect"] = (
        "First-layer backpropagated norm at initialization (top, log scale) and test accuracy (bottom) per "
        "normalization" + (f", for {_listing(_order('activation', norm_runs['activation'].unique()))} at "
                           f"depth {_listing(sorted(norm_runs['depth'].unique()))}" if not norm_runs.empty else "")
        + " (study \\texttt{normalization}; mean over seeds, whiskers min--max)."
        + (_diverged_text(norm_runs) if not norm_runs.empty else ""))
    res_runs = _study(runs, "residual")
    out["residual_vs_plain"] = (
        "Test accuracy against depth for the plain and the residual MLP" +
        (f" ({_listing(_order('activation', res_runs['activation'].unique()))})" if not res_runs.empty else "")
        + ", mean over seeds with band min--max; dashed: chance." + (_diverged_text(res_runs) if not res_runs.empty else ""))
    memory = _study(timesteps, "memory")
    if memory.empty:
        out["hidden_grad_vs_distance"] = "Gradient norm through time: no recurrent runs at this scale."
    else:
        tasks = {"adding": "the adding problem", "copy": "the copy task", "mnist1d_seq": "sequential MNIST-1D"}
        datas = [tasks.get(d, _tex(d)) for d in _order("data", memory["data"].unique())]
        models = [MODEL_LABELS.get(m, _tex(m)) for m in _order("model", memory["model"].unique())]
        lengths = sorted(memory["length"].dropna().unique())
        mem_runs = _study(runs, "memory")
        out["hidden_grad_vs_distance"] = (
            r"Norm of $\partial\ell/\partial h_t$ against the distance to the loss for " + _listing(models)
            + " on " + " and ".join(datas)
            + (f" (length{'s' if len(lengths) > 1 else ''} {_listing(lengths)})" if lengths else "")
            + "; solid at initialization, dashed at the last probed step, mean over seeds (log scale)."
            + (_diverged_text(mem_runs) if not mem_runs.empty else ""))
    clip_runs = pd.concat([_study(runs, "clipping_mlp"), _study(runs, "clipping_rnn")])
    out["clipping"] = (
        "Training loss with and without gradient clipping (top; x: a diverged run's last finite loss) and the "
        "share of diverged runs (bottom)" + (f"; {int((clip_runs['status'] == 'diverged').sum())} of "
                                             f"{len(clip_runs)} runs diverged." if not clip_runs.empty else "."))
    dying = _study(layers, "dying_relu")
    has_died = not dying.empty and (dying["quantity"].astype(str) == "died_frac").any()
    dying_runs = _study(runs, "dying_relu")
    out["dead_units_vs_lr"] = (
        "Share of dead units (whose derivative stays below a stated share of its maximum on every example of "
        "the fixed probe set) against the learning rate, "
        "per activation and bias initialization (study \\texttt{dying\\_relu})"
        + ("; top: dead at initialization, bottom: died during training." if has_died else
           "; dead units at the last probe (this summary has no died\\_frac probe).")
        + (_diverged_text(dying_runs) if not dying_runs.empty else ""))
    prelu_runs = dying_runs[dying_runs["activation"].astype(str) == "prelu"] if not dying_runs.empty else dying_runs
    out["prelu_slope"] = (
        "PReLU's learned negative slope over training, per layer (mean over seeds, band min--max)."
        + (_diverged_text(prelu_runs) if not prelu_runs.empty else ""))
    selu_runs = _study(runs, "selu")
    out["selu_statistics"] = (
        "Activation mean and standard deviation against layer at initialization"
        + (f" for {_listing(_order('activation', selu_runs['activation'].unique()))}" if not selu_runs.empty else "")
        + " with LeCun-normal weights (study \\texttt{selu}).")
    out["theory_vs_measurement"] = (
        "Mean-field prediction $\\sqrt{\\chi_1}$ against the measured per-layer gradient factor at "
        "initialization (study \\texttt{meanfield}).")
    out["theory_beyond_meanfield"] = (
        "Predicted and measured gradient factors at initialization for batch-norm MLPs (per layer), "
        "pre-activation residual MLPs (per block) and vanilla RNNs (per time step), one point per run "
        "where the scale has such runs; the legend gives each theory's number of runs and median "
        "relative error.")
    return out

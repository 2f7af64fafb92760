"""The verdict protocol itself: how far each named threshold can move before its verdict changes."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import pandas as pd

from gradatlas.analysis.figures.spec import DOUBLE_COLUMN, NoData, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# One colour per summary verdict, the same in every figure that shows verdicts.
VERDICT_COLORS = {"supported": "#1b7837", "contradicted": "#b2182b", "mixed": "#e08214", "inconclusive": "0.55",
                  "no data at this scale": "0.8", "inconclusive (unstable)": "0.55"}
ROW_INCHES = 0.13
SENSITIVITY_COLUMN_ROWS = 40


def _position(value: float, low: float, high: float, log: bool) -> float:
    """Where ``value`` lies in [low, high], from 0 to 1 (geometrically for a log range)."""
    if log:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


@figure(width=DOUBLE_COLUMN,
        caption="Threshold sensitivity: for each named threshold (rows; claim and name), its stated search range "
                "scaled to the unit interval (geometrically for a logarithmic one), its value (black tick) and "
                "the range over which its claim's verdict stays the same, the other thresholds fixed (bar, "
                "coloured by that verdict; an arrow where the range is open, i.e.\\ reaches the end of the "
                "search range). Computed from the same runs (Table~\\ref{tab:sensitivity}).",
        report="Threshold sensitivity: per named threshold, the range over which its claim's verdict is unchanged "
               "(bar, coloured by verdict) within its search range, its value marked.")
def threshold_sensitivity(sensitivity: Optional[pd.DataFrame] = None, *, width: Optional[float] = DOUBLE_COLUMN) -> Figure:
    """One row per threshold of ``claims.sensitivity.ranges_frame``: its stable range as a bar on
    its search range scaled to [0, 1], its value as a tick."""
    from matplotlib.lines import Line2D

    from gradatlas.analysis.figures import style

    if sensitivity is None or len(sensitivity) == 0:
        raise NoData("threshold_sensitivity: no sensitivity table (no claim has data at this scale)")
    rows = sensitivity.reset_index(drop=True)
    # Two columns of rows past SENSITIVITY_COLUMN_ROWS thresholds: one column of eighty would be
    # taller than a page.
    columns = 1 if len(rows) <= SENSITIVITY_COLUMN_ROWS else 2
    per_column = math.ceil(len(rows) / columns)
    fig, axes = style.figure(1, columns, width, row_height=ROW_INCHES * per_column + 0.3, extra_height=0.45)
    for index in range(columns):
        ax = axes[0, index]
        mine = rows.iloc[index * per_column:(index + 1) * per_column].reset_index(drop=True)
        for y, row in mine.iterrows():
            scale = (row["search_low"], row["search_high"], bool(row["log"]))
            left, right = _position(row["stable_low"], *scale), _position(row["stable_high"], *scale)
            colour = VERDICT_COLORS.get(row["verdict"], "0.55")
            ax.barh(y, max(right - left, 0.004), left=left, height=0.6, color=colour, linewidth=0)
            ax.plot([_position(row["value"], *scale)] * 2, [y - 0.38, y + 0.38], color="black", linewidth=1.0)
            if row["open_low"]:
                ax.annotate("", xy=(-0.03, y), xytext=(0.0, y),
                            arrowprops={"arrowstyle": "->", "color": colour, "lw": 0.8})
            if row["open_high"]:
                ax.annotate("", xy=(1.03, y), xytext=(1.0, y),
                            arrowprops={"arrowstyle": "->", "color": colour, "lw": 0.8})
        ax.set_yticks(range(len(mine)), [f"{int(r.claim)}: {r.threshold}" for r in mine.itertuples()], fontsize=5.5)
        ax.set_ylim(per_column - 0.5, -0.5)
        ax.set_xlim(-0.06, 1.06)
        ax.set_xticks([0, 0.5, 1], ["low end", "middle", "high end"])
        ax.set_xlabel("position in the threshold's search range")
    shown = [v for v in VERDICT_COLORS if v in set(rows["verdict"])]
    handles = [Line2D([], [], color=VERDICT_COLORS[v], linewidth=5, label=v) for v in shown]
    handles.append(Line2D([], [], color="black", linewidth=1.0, label="threshold's value"))
    style.fig_legend(fig, handles)
    return fig


FOREST_ROW_INCHES = 0.19


def _forest_scale(values: list[float]) -> tuple[float, float, bool]:
    """The row's own axis: its span, padded, logarithmic where every value is positive and the
    span exceeds a decade."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    low, high = min(finite), max(finite)
    log = low > 0 and high / low > 10.0
    if log:
        pad = (math.log(high) - math.log(low)) * 0.08
        return math.exp(math.log(low) - pad), math.exp(math.log(high) + pad), True
    pad = (high - low) * 0.08 or max(abs(high), 1.0) * 0.1
    return low - pad, high + pad, False


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


@figure(width=DOUBLE_COLUMN,
        caption="The claims at a glance: per claim (rows), the deciding sub-claim's value (dot, coloured by the "
                "claim's summary verdict) with its Holm-adjusted interval (bar) against the threshold(s) its rule "
                "compares with (black ticks; two for an equivalence or a two-sided rule). Each row has its own "
                "axis, logarithmic where the quantity is positive and spans more than a decade; the numbers at "
                "the right are the value, its interval and the thresholds. The sub-claim is named in "
                "Table~\\ref{tab:claims}.",
        report="The claims at a glance: per claim, the deciding sub-claim's value and Holm-adjusted interval against "
               "its threshold, coloured by the summary verdict.")
def claims_forest(claims: Optional[pd.DataFrame] = None, *, width: Optional[float] = DOUBLE_COLUMN) -> Figure:
    """One row per claim of the ledger (``analysis/claims.parquet``): value, adjusted interval and
    thresholds of its deciding sub-claim on the row's own axis; the numbers as text beside it."""
    from matplotlib.lines import Line2D

    from gradatlas.analysis.figures import style

    def fmt(value: float) -> str:
        return f"{value:.3g}"

    if claims is None or len(claims) == 0:
        raise NoData("claims_forest: no ledger at this scale")
    rows = claims.sort_values("claim").reset_index(drop=True)
    fig, axes = style.figure(1, 1, width, row_height=FOREST_ROW_INCHES * len(rows) + 0.2, extra_height=0.45)
    ax = axes[0, 0]
    texts = []
    for y, row in rows.iterrows():
        colour = VERDICT_COLORS.get(row["verdict"], "0.55")
        numbers = [row["value"], row["adj_low"], row["adj_high"], row["bound_low"], row["bound_high"]]
        if not math.isfinite(row["value"]) if row["value"] is not None else True:
            texts.append(str(row["verdict"]))
            continue
        scale = _forest_scale(numbers)
        at = [(_position(v, *scale) if v is not None and math.isfinite(v) else math.nan) for v in numbers]
        if math.isfinite(at[1]) and math.isfinite(at[2]):
            ax.plot([at[1], at[2]], [y, y], color=colour, linewidth=1.6, solid_capstyle="butt")
        ax.plot([at[0]], [y], marker="o", markersize=3.5, color=colour, markeredgewidth=0)
        for bound in {at[3], at[4]}:
            if math.isfinite(bound):
                ax.plot([bound, bound], [y - 0.35, y + 0.35], color="black", linewidth=0.9)
        interval = f" [{fmt(row['adj_low'])}, {fmt(row['adj_high'])}]" if math.isfinite(row["adj_low"]) else ""
        bounds = sorted({fmt(b) for b in (row["bound_low"], row["bound_high"]) if math.isfinite(b)})
        texts.append(f"{fmt(row['value'])}{interval}" + (f" vs {', '.join(bounds)}" if bounds else "")
                     + ("  (log)" if scale[2] else ""))
    ax.set_yticks(range(len(rows)), [f"{int(r.claim)}: {_short(str(r.title), 48)}" for r in rows.itertuples()],
                  fontsize=6)
    right = ax.secondary_yaxis("right")
    right.set_yticks(range(len(rows)), texts, fontsize=5.5)
    right.tick_params(length=0)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xticks([])
    ax.set_xlabel("each row on its own axis: the deciding value, its adjusted interval and its threshold(s)")
    shown = [v for v in VERDICT_COLORS if v in set(rows["verdict"])]
    handles = [Line2D([], [], color=VERDICT_COLORS[v], marker="o", linewidth=1.6, label=v) for v in shown]
    handles.append(Line2D([], [], color="black", linewidth=0.9, label="threshold"))
    style.fig_legend(fig, handles)
    return fig

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
    fig, axes = style.figure(1, 1, width, row_height=ROW_INCHES * len(rows) + 0.3, extra_height=0.45)
    ax = axes[0, 0]
    for y, row in rows.iterrows():
        scale = (row["search_low"], row["search_high"], bool(row["log"]))
        left, right = _position(row["stable_low"], *scale), _position(row["stable_high"], *scale)
        colour = VERDICT_COLORS.get(row["verdict"], "0.55")
        ax.barh(y, max(right - left, 0.004), left=left, height=0.6, color=colour, linewidth=0)
        ax.plot([_position(row["value"], *scale)] * 2, [y - 0.38, y + 0.38], color="black", linewidth=1.0)
        if row["open_low"]:
            ax.annotate("", xy=(-0.03, y), xytext=(0.0, y), arrowprops={"arrowstyle": "->", "color": colour, "lw": 0.8})
        if row["open_high"]:
            ax.annotate("", xy=(1.03, y), xytext=(1.0, y), arrowprops={"arrowstyle": "->", "color": colour, "lw": 0.8})
    ax.set_yticks(range(len(rows)), [f"{int(r.claim)}: {r.threshold}" for r in rows.itertuples()], fontsize=5.5)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(-0.06, 1.06)
    ax.set_xticks([0, 0.5, 1], ["low end", "middle", "high end"])
    ax.set_xlabel("position in the threshold's search range")
    shown = [v for v in VERDICT_COLORS if v in set(rows["verdict"])]
    handles = [Line2D([], [], color=VERDICT_COLORS[v], linewidth=5, label=v) for v in shown]
    handles.append(Line2D([], [], color="black", linewidth=1.0, label="threshold's value"))
    style.fig_legend(fig, handles)
    return fig

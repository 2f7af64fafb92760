"""One figure, one spec: the ``@figure`` decorator on a drawing function holds all that the
paper, the workflow and the README know of the figure.

A spec gives the figure's name (the drawing function's, also its file stem), the width it is
drawn and printed at, the studies whose runs it draws, the plain-text caption of the Snakemake
report (``report/figures/<name>.rst``, written by ``python -m gradatlas.analysis.figures
captions``) and the paper's caption, LaTeX said from what the data holds (a string, or a
function of the ``runs``, ``layers`` and ``timesteps`` tables). ``registry`` collects the specs.

Light on purpose: neither this module nor the section modules import matplotlib, seaborn or
torch when imported (the workflow reads the registry while it parses); a drawing function
imports them when it draws (``styled``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Union

import pandas as pd

SINGLE_COLUMN = 3.4  # inches: one column of a two-column paper (a ``figure`` float)
DOUBLE_COLUMN = 7.0  # inches: the full text width (a ``figure*`` float)
PRINT_WIDTHS = {SINGLE_COLUMN: "figure", DOUBLE_COLUMN: "figure*"}

Caption = Union[str, Callable[[pd.DataFrame, pd.DataFrame, pd.DataFrame], str]]


class NoData(LookupError):
    """The tables hold no rows for what a figure shows (e.g. a study not run at this scale)."""


@dataclass(frozen=True)
class FigureSpec:
    """Everything about one figure except how it is drawn (``draw`` does that).

    Attributes:
        name: the figure's name and file stem (``figures/<name>.pdf``).
        draw: the drawing function: summary tables (by their names) in, a Figure out.
        width: the width it is drawn and printed at, ``SINGLE_COLUMN`` or ``DOUBLE_COLUMN``;
            the paper includes it unscaled, in the float ``PRINT_WIDTHS[width]``.
        studies: the studies whose runs it draws (none for closed forms); the README's claim
            index links a claim to the figures of the studies its verdict reads.
        report: the caption of the Snakemake report, plain text.
        caption: the paper's caption (LaTeX), a string or a function of runs, layers, timesteps.
        section: the module of ``gradatlas.analysis.figures`` that defines it.
    """

    name: str
    draw: Callable[..., Any]
    width: float
    studies: tuple[str, ...]
    report: str
    caption: Caption
    section: str

    @property
    def float_env(self) -> str:
        """The paper's float for this width: ``figure`` or ``figure*``."""
        return PRINT_WIDTHS[self.width]

    def caption_for(self, runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
        """The paper's caption for these tables."""
        return self.caption if isinstance(self.caption, str) else self.caption(runs, layers, timesteps)


def styled(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` drawn under the figures' style (``style.draw_styled``), which is imported,
    with matplotlib and seaborn, only when a figure is drawn."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from gradatlas.analysis.figures import style

        return style.draw_styled(function, *args, **kwargs)

    return wrapper


def figure(*, width: float, report: str, caption: Caption, studies: tuple[str, ...] = ()) -> Callable:
    """Declare a drawing function a figure: it is styled and carries its ``FigureSpec`` as ``.spec``.

    Args:
        width: ``SINGLE_COLUMN`` or ``DOUBLE_COLUMN``.
        report: the Snakemake report's caption (plain text, one paragraph).
        caption: the paper's caption (LaTeX), or a function of runs, layers and timesteps giving it.
        studies: the studies whose runs the figure draws.

    Raises:
        ValueError: for a width the paper has no float for, or a multi-line report caption.
    """
    if width not in PRINT_WIDTHS:
        raise ValueError(f"figure width {width}: the paper prints {sorted(PRINT_WIDTHS)} inches")
    if not report.strip() or "\n" in report:
        raise ValueError("figure report caption: one non-empty line")

    def declare(function: Callable[..., Any]) -> Callable[..., Any]:
        drawn = styled(function)
        drawn.spec = FigureSpec(name=function.__name__, draw=drawn, width=width, studies=tuple(studies),
                                report=report, caption=caption, section=function.__module__.rpartition(".")[2])
        return drawn

    return declare

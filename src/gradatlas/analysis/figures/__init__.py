"""The paper's figures: pure functions from summary DataFrames to matplotlib Figures, one spec each.

A figure is one ``@figure``-decorated function (``spec.figure``) in the module of its section
(``activations``, ``depth``, ``normalization``, ``residual``, ``recurrent``, ``exploding``,
``units``, ``theory``): the decorator holds its print width, the studies it draws, its report
caption and its paper caption (from the data). ``registry`` collects them into ``FIGURES``;
everything else is derived from it: the workflow's list of figures (``rules/common.smk``), the
report's caption files (``report/figures/*.rst``, ``python -m gradatlas.analysis.figures
captions``), the caption macros of ``numbers.tex`` and the README's claim index.

A drawing function takes the tables it needs by their summary names (``runs``, ``layers``,
``timesteps``, ``steps``, ``theory``) plus keyword options, draws only what those tables hold
and returns a :class:`matplotlib.figure.Figure`; nothing here reads a file. A study whose
rows are absent raises :class:`NoData` (``output.draw`` then draws ``output.no_data_figure``).
Shared parts: ``style`` (how every figure looks), ``plot`` (drawing helpers), ``select`` (rows),
``levels`` (level orders, labels, caption text), ``output`` (drawing at the print width, saving).

Importing this package, its registry or a section imports neither matplotlib, seaborn nor
torch: a drawing function imports them when it draws.
"""

from gradatlas.analysis.figures.registry import FIGURE_NAMES, FIGURES, captions
from gradatlas.analysis.figures.spec import DOUBLE_COLUMN, SINGLE_COLUMN, FigureSpec, NoData

__all__ = ["DOUBLE_COLUMN", "FIGURES", "FIGURE_NAMES", "SINGLE_COLUMN", "FigureSpec", "NoData", "captions"]

"""Drawing a registered figure at its print width, and writing it (matplotlib).

``draw`` calls a figure's function with the tables its signature asks for; a study without
rows gives ``no_data_figure``. ``save_figure`` writes a PDF with Type 42 (TrueType) fonts and
a PNG beside it, each the same bytes for the same figure.
"""

from __future__ import annotations

import inspect
import os
import uuid
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.figure import Figure

from gradatlas.analysis.figures import style
from gradatlas.analysis.figures.registry import FIGURES
from gradatlas.analysis.figures.spec import SINGLE_COLUMN, NoData


def draw(name: str, **data: Any) -> Figure:
    """Figure ``name`` at its print width, from the tables its signature asks for (extra tables
    are ignored); a study without rows gives ``no_data_figure``."""
    spec = FIGURES[name]
    wanted = inspect.signature(spec.draw).parameters
    kwargs = {key: data[key] for key in wanted if key in data}
    if "width" in wanted:
        kwargs["width"] = spec.width
    try:
        return spec.draw(**kwargs)
    except NoData as err:
        return no_data_figure(name, str(err))


def no_data_figure(name: str, message: str) -> Figure:
    """A small placeholder figure that says why figure ``name`` has nothing to show."""
    with mpl.rc_context(style.STYLE):
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
    with mpl.rc_context(style.PDF_FONTS):
        _save_atomic(fig, path, format="pdf", metadata={"CreationDate": None, "Creator": "gradatlas"})
    _save_atomic(fig, path.with_suffix(".png"), format="png", dpi=style.PNG_DPI)
    return path


def _save_atomic(fig: Figure, path: Path, **kwargs: Any) -> None:
    """``fig.savefig`` to a temporary file beside ``path``, then renamed to it."""
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        fig.savefig(tmp, **kwargs)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


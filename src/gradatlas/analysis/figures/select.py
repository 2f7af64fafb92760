"""Selecting the rows a figure draws from the summary tables; pandas only (no matplotlib)."""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd

from gradatlas.analysis.figures.spec import NoData


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with categorical columns turned back into plain values (no unused levels)."""
    frame = frame.copy()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(object)
    return frame


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise ValueError naming the columns of ``columns`` that ``frame`` lacks (``what``: the caller)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}; has {', '.join(map(str, frame.columns))}")


def rows(frame: Optional[pd.DataFrame], what: str, *, study: Optional[str] = None,
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
    require_columns(frame, needed, what)
    mask = pd.Series(True, index=frame.index)
    if study is not None:
        mask &= frame["study"].astype(object) == study
    if quantity is not None:
        wanted = [quantity] if isinstance(quantity, str) else list(quantity)
        mask &= frame["quantity"].astype(object).isin(wanted)
    part = plain(frame[mask])
    if quantity is not None:
        part = part[np.isfinite(part["value"].astype(float))]
    if part.empty:
        where = f"study {study!r}" if study is not None else "the table"
        also = f", quantity {quantity!r}" if quantity is not None else ""
        raise NoData(f"{what}: no rows for {where}{also}")
    return part


def not_diverged(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of runs that did not diverge (a diverged run's accuracy is undefined)."""
    if "status" not in frame:
        return frame
    return frame[frame["status"].astype(str) != "diverged"]


def last_step_rows(frame: pd.DataFrame, by: Sequence[str] = ("run",)) -> pd.DataFrame:
    """The rows at each run's last probed step (the largest ``step`` with a finite value)."""
    last = frame.groupby(list(by))["step"].transform("max")
    return frame[frame["step"] == last]



def hidden_rows_of(layers: pd.DataFrame, runs: pd.DataFrame, factors: Sequence[str],
                   quantities: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """The hidden-layer rows of ``layers`` that belong to ``runs`` (of ``quantities``, all when
    None), each with the run's ``factors`` as columns (the head, stem and per-example rows left out)."""
    keep = layers["run"].astype(str).isin(runs["run"].astype(str)) & ~layers["name"].astype(str).isin(
        ["head", "input", "stem", "arc"])
    if quantities is not None:
        keep &= layers["quantity"].astype(str).isin(list(quantities))
    wanted = layers[keep]
    by_run = runs.assign(run=runs["run"].astype(str)).set_index("run")
    runs_of = wanted["run"].astype(str)
    return wanted.assign(**{factor: runs_of.map(by_run[factor]).to_numpy() for factor in factors})

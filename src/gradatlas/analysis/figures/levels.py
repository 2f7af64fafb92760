"""Levels, labels and caption text shared by the figures; pandas only (no matplotlib).

Levels keep a stable order (``ORDERS``), so that each level keeps its colour across figures
(``style.color``). Caption helpers write LaTeX from what the tables hold.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd

from gradatlas.core.names import ACTIVATION_NAMES, CLIPS, MODEL_NAMES, NORMS

ORDERS: dict[str, list[Any]] = {
    "activation": [name for name in ACTIVATION_NAMES if name != "swish"],  # swish is silu
    "model": list(MODEL_NAMES),
    "norm": list(NORMS),
    "clip": list(CLIPS),
    "init": ["default", "normal", "lecun_normal", "xavier_normal", "xavier_uniform", "he_normal",
             "he_uniform", "orthogonal"],
    "data": ["mnist1d", "mnist1d_seq", "digits", "adding", "copy"],
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


def missing(value: Any) -> bool:
    """None or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def order(column: str, values: Iterable[Any]) -> list[Any]:
    """Distinct values, known levels first in their canonical order, then the rest sorted."""
    values = list(pd.unique(pd.Series(list(values), dtype=object)))
    present = [v for v in values if not missing(v)]
    known = ORDERS.get(column, [])
    first = [v for v in known if v in present]
    rest = [v for v in present if v not in known]
    try:
        rest = sorted(rest)
    except TypeError:
        rest = sorted(rest, key=str)
    has_missing = any(missing(v) for v in values)
    return first + rest + ([np.nan] if has_missing else [])


def fmt(value: Any) -> str:
    """A level as text: integers without '.0', missing as 'default'."""
    if missing(value):
        return "default"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def quantity_label(quantity: str) -> str:
    """An axis label for a probed quantity."""
    return QUANTITY_LABELS.get(quantity, quantity.replace("_", " "))


def metric_label(frame: pd.DataFrame) -> str:
    """An axis label for the test metric of ``frame``'s runs (one metric, or generic)."""
    if "metric" in frame:
        metrics = [m for m in frame["metric"].dropna().unique()]
        if len(metrics) == 1:
            return METRIC_LABELS.get(str(metrics[0]), f"test {metrics[0]}")
    return "test metric"


def is_accuracy(frame: pd.DataFrame) -> bool:
    """Whether every run of ``frame`` is scored by accuracy."""
    return "metric" in frame and set(frame["metric"].dropna().astype(str)) == {"accuracy"}


# ---------------------------------------------------------------------------------------
# Caption text.

def tex(text: Any) -> str:
    """``text`` escaped for LaTeX."""
    # Imported here: gradatlas.analysis.tables imports the claims and with them torch, which the
    # registry must not import while the workflow parses.
    from gradatlas.analysis.tables import escape_latex

    return escape_latex(text)


def study_rows(frame: Optional[pd.DataFrame], study: str) -> pd.DataFrame:
    """The rows of ``study`` (empty where the table is empty or has no study column)."""
    if frame is None or frame.empty or "study" not in frame:
        return pd.DataFrame()
    return frame[frame["study"].astype(str) == study]


def listing(values: Iterable[Any]) -> str:
    """``a, b and c`` (each level formatted and escaped)."""
    items = [tex(fmt(v)) for v in values]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def diverged_text(runs: pd.DataFrame, marked: bool = True) -> str:
    """A caption's sentence on the diverged runs among ``runs`` (``marked``: the figure draws
    them as x; otherwise they are only counted)."""
    k = int((runs["status"].astype(str) == "diverged").sum()) if "status" in runs else 0
    if not k:
        return " No run diverged."
    return (f" {k} run{'s' if k != 1 else ''} diverged: left out of the means"
            + (", drawn as x." if marked else " and not drawn."))

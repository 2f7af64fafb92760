"""The measured gradient factor: log-linear fits of a run's recorded gradient norms.

``factor_fit`` fits log(backprop_norm) against the hidden-layer index, ``time_factor_fit`` the
RNN hidden-state gradient against time; ``LayerArrays`` holds one run's layers rows as numpy
arrays, so that many runs' fits do not index DataFrames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import pandas as pd

# Rows that are not hidden layers of the fully connected stack ("input", "arc": rows of the per-example and arc quantities).
NON_HIDDEN = ("head", "stem", "input", "arc")
# The columns of the layers table that the measurements read.
LAYER_KEYS = ("run", "step", "layer", "name", "quantity", "value")

def _strings(column: pd.Series) -> np.ndarray:
    """A column as a numpy array of str, cheaply for categoricals (one str per category)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = np.asarray(column.cat.categories.astype(str), dtype=object)
        codes = column.cat.codes.to_numpy()
        out = categories[np.where(codes >= 0, codes, 0)] if len(categories) else np.full(len(codes), "nan", dtype=object)
        out[codes < 0] = "nan"
        return out
    return column.astype(str).to_numpy(dtype=object)


@dataclass(frozen=True)
class LayerArrays:
    """The layers rows of one run as numpy arrays: what the measurements read, without the
    per-call cost of indexing DataFrames that carry every factor column."""

    step: np.ndarray
    layer: np.ndarray
    hidden: np.ndarray
    quantity: np.ndarray
    value: np.ndarray
    # Profiles already computed, by (quantity, step): the sensitivity analysis re-evaluates every
    # claim about 1,700 times on the same runs, and the string comparison over a run's rows was
    # most of its time (measured: the full scale's sweep 10 min without the cache).
    _profiles: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "LayerArrays":
        """From a layers DataFrame (columns step, layer, name, quantity, value; step, name and
        quantity optional: absent means step 0, a hidden layer, backprop_norm)."""
        n = len(frame)
        return cls(
            step=frame["step"].to_numpy(dtype=np.int64) if "step" in frame else np.zeros(n, dtype=np.int64),
            layer=frame["layer"].to_numpy(dtype=np.int64) if "layer" in frame else np.zeros(n, dtype=np.int64),
            hidden=~np.isin(_strings(frame["name"]), NON_HIDDEN) if "name" in frame else np.ones(n, dtype=bool),
            quantity=_strings(frame["quantity"]) if "quantity" in frame else np.full(n, "backprop_norm", dtype=object),
            value=frame["value"].to_numpy(dtype=np.float64) if "value" in frame else np.zeros(0),
        )

    def __len__(self) -> int:
        return len(self.value)

    def profile(self, quantity: str = "backprop_norm", step: Optional[int] = 0) -> pd.Series:
        """``quantity`` per hidden layer (index: layer) at ``step``; None: mean over steps."""
        key = (quantity, step)
        if key not in self._profiles:
            self._profiles[key] = self._profile(quantity, step)
        return self._profiles[key].copy()  # a copy: a caller may change what it gets

    def _profile(self, quantity: str, step: Optional[int]) -> pd.Series:
        mask = self.hidden & (self.quantity == quantity)
        if step is not None:
            mask &= self.step == step
        if not mask.any():
            return pd.Series(dtype=np.float64)
        value = self.value[mask]
        index, inverse = np.unique(self.layer[mask], return_inverse=True)
        present = ~np.isnan(value)  # a mean over steps skips NaN, as pandas does
        sums = np.bincount(inverse, weights=np.where(present, value, 0.0), minlength=len(index))
        counts = np.bincount(inverse, weights=present.astype(np.float64), minlength=len(index))
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return pd.Series(means, index=pd.Index(index, name="layer"), dtype=np.float64)

    def last_step(self) -> Optional[int]:
        """The last probed step, or None without rows."""
        return int(self.step.max()) if len(self.step) else None


def split_layers(layers: pd.DataFrame) -> dict[str, LayerArrays]:
    """A layers table split by ``run`` into ``LayerArrays``, in one pass."""
    if layers is None or layers.empty or "run" not in layers:
        return {}
    runs = _strings(layers["run"])
    order = np.argsort(runs, kind="stable")
    runs = runs[order]
    arrays = LayerArrays.from_frame(layers)
    fields = [getattr(arrays, name)[order] for name in ("step", "layer", "hidden", "quantity", "value")]
    cuts = np.flatnonzero(runs[1:] != runs[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(runs)]])
    return {str(runs[a]): LayerArrays(*(f[a:b] for f in fields)) for a, b in zip(starts, ends)}


LayersLike = Union[pd.DataFrame, LayerArrays]


def _arrays(layers_of_one_run: LayersLike) -> LayerArrays:
    if isinstance(layers_of_one_run, LayerArrays):
        return layers_of_one_run
    return LayerArrays.from_frame(layers_of_one_run)


def hidden_profile(layers_of_one_run: LayersLike, quantity: str = "backprop_norm",
                   step: Optional[int] = 0) -> pd.Series:
    """``quantity`` per hidden layer (index: layer) of one run at ``step`` (None: all steps, mean).

    Rows named 'head' or 'stem' are dropped, so the series covers the hidden layers
    (``hidden.i`` of an MLP, ``block.i`` of a residual MLP). Columns ``step``, ``quantity`` and
    ``name`` are used when present. Accepts a DataFrame or ``LayerArrays``.
    """
    if len(layers_of_one_run) == 0:
        return pd.Series(dtype=np.float64)
    return _arrays(layers_of_one_run).profile(quantity, step)


def log_linear_fit(x: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Least-squares fit of log(values) against x; zero and non-finite values are ignored.

    Returns ``factor = exp(-slope)``, ``slope``, ``r2`` and ``n`` (points used); NaNs when fewer
    than two points are usable.
    """
    keep = np.isfinite(values) & (values > 0)
    x, y = x[keep], np.log(values[keep])
    n = int(keep.sum())
    if n < 2 or np.ptp(x) == 0:
        return {"factor": float("nan"), "slope": float("nan"), "r2": float("nan"), "n": n}
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (slope * x + intercept)
    total, unexplained = float(np.sum((y - y.mean()) ** 2)), float(np.sum(residual**2))
    # A flat profile (total ~ 0, factor 1) is fitted perfectly; rounding must not make R^2 < 0.
    r2 = 1.0 - unexplained / total if total > 1e-20 * n else (1.0 if unexplained <= 1e-20 * n else 0.0)
    return {"factor": float(math.exp(-slope)), "slope": float(slope), "r2": r2, "n": n}


def _fit_points(layers_of_one_run: LayersLike, step: Optional[int], from_layer: int) -> tuple[np.ndarray, np.ndarray, int]:
    profile = hidden_profile(layers_of_one_run, "backprop_norm", step)
    profile = profile[profile.index >= from_layer]
    underflow = hidden_profile(layers_of_one_run, "underflow", step).reindex(profile.index)
    lost = (underflow.to_numpy() > 0) & np.isfinite(underflow.to_numpy())
    values = np.where(lost, np.nan, profile.to_numpy())
    return profile.index.to_numpy(dtype=np.int64), values, int(lost.sum())


def factor_fit(layers_of_one_run: LayersLike, step: Optional[int] = 0, from_layer: int = 0) -> dict[str, float]:
    """Least-squares fit of log(backprop_norm) against the hidden-layer index.

    Zero and non-finite norms are ignored (a dead or step layer passes no gradient; a log of 0
    would dominate the fit), and so are layers whose float32 gradient underflowed (quantity
    ``underflow`` is 1: their norm measures float32, not the network); ``excluded`` counts
    the latter. Only hidden layers with index >= ``from_layer`` are fitted.

    Returns:
        ``factor = exp(-slope)`` (so that norm_l ~ factor^(L - l), comparable to sqrt(chi_1)),
        ``slope``, ``r2`` (coefficient of determination of the fit), ``n`` (layers used) and
        ``excluded`` (underflowed layers left out); NaNs when fewer than two layers are usable.
    """
    index, values, excluded = _fit_points(layers_of_one_run, step, from_layer)
    fit = log_linear_fit(index.astype(np.float64), values)
    fit["excluded"] = excluded
    return fit


def fitted_layers(layers_of_one_run: LayersLike, step: Optional[int] = 0, from_layer: int = 0) -> np.ndarray:
    """The hidden-layer indices ``factor_fit`` fits (finite, positive, not underflowed), so that
    a prediction of the profile can be fitted over the same layers."""
    index, values, _ = _fit_points(layers_of_one_run, step, from_layer)
    return index[np.isfinite(values) & (values > 0)]


def example_values(layers_of_one_run: LayersLike, quantity: str, step: int = 0) -> np.ndarray:
    """The per-example rows of an opt-in quantity (name ``input``, e.g. ``input_sq_norm``) at
    ``step``, in batch order; empty where the run did not record it."""
    arrays = _arrays(layers_of_one_run)
    mask = ~arrays.hidden & (arrays.quantity == quantity) & (arrays.step == step)
    order = np.argsort(arrays.layer[mask], kind="stable")
    return arrays.value[mask][order]


def measured_factor(layers_of_one_run: LayersLike, step: Optional[int] = 0) -> float:
    """The measured per-layer gradient factor exp(-slope) of one run (see ``factor_fit``)."""
    return factor_fit(layers_of_one_run, step)["factor"]


def time_factor_fit(timesteps_of_one_run: pd.DataFrame, step: int = 0) -> dict[str, float]:
    """Fit of log(hidden_grad_norm) against t at ``step``: ``factor = exp(-slope)`` is the
    measured per-step factor (norm_t ~ factor^(T - t)); time steps whose gradient underflowed
    float32 (timestep quantity ``underflow`` is 1) are left out and counted in ``excluded``."""
    part = timesteps_of_one_run[timesteps_of_one_run["step"] == step]
    quantity = _strings(part["quantity"])
    norms = pd.Series(part["value"].to_numpy(np.float64)[quantity == "hidden_grad_norm"],
                      index=part["t"].to_numpy(np.int64)[quantity == "hidden_grad_norm"]).sort_index()
    flags = pd.Series(part["value"].to_numpy(np.float64)[quantity == "underflow"],
                      index=part["t"].to_numpy(np.int64)[quantity == "underflow"]).reindex(norms.index)
    lost = (flags.to_numpy() > 0) & np.isfinite(flags.to_numpy())
    fit = log_linear_fit(norms.index.to_numpy(np.float64), np.where(lost, np.nan, norms.to_numpy()))
    fit["excluded"] = int(lost.sum())
    return fit


def split_timesteps(timesteps: Optional[pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The step-0 rows of a timesteps table by ``run`` (hidden_grad_norm and underflow only)."""
    if timesteps is None or timesteps.empty or "run" not in timesteps:
        return {}
    part = timesteps[(timesteps["step"] == 0) & timesteps["quantity"].isin(["hidden_grad_norm", "underflow"])]
    part = part[["run", "step", "t", "quantity", "value"]]
    return {str(run): rows for run, rows in part.groupby(part["run"].astype(str), sort=False)}

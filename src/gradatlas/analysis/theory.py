"""Mean-field predictions for wide fully connected networks at initialization.

After Poole et al. (2016) and Schoenholz et al. (2017). A hidden layer computes
``z_{l+1} = W_{l+1} phi(z_l) + b_{l+1}`` with weight entries of variance ``sigma_w^2 / fan_in``
and bias entries of variance ``sigma_b^2``. In the wide limit the pre-activations of a layer are
Gaussian with variance ``q_l``, which follows the *length map*

    q_{l+1} = sigma_w^2 E[phi(sqrt(q_l) z)^2] + sigma_b^2,    z ~ N(0, 1),

and the squared norm of the backpropagated gradient dLoss/dz_l shrinks or grows per layer by

    chi_1 = sigma_w^2 E[phi'(sqrt(q*) z)^2]

at the fixed point ``q*`` of the length map, so the gradient norm itself changes by the
*per-layer factor* ``sqrt(chi_1)``: ``||dLoss/dz_l|| ~ sqrt(chi_1)^(L - l)``.
``measured_factor`` fits the same factor to a run's recorded ``backprop_norm``; ``theory_table``
sets prediction and measurement side by side. Everything here is pure computation.

Quadrature. ``gaussian_expectation`` defaults to composite Gauss-Legendre panels with breakpoints
at z = 0 and on the scale 1/sqrt(q). Plain Gauss-Hermite (``numpy.polynomial.hermite_e.hermegauss``,
``method="hermite"``) is exact for polynomials but converges slowly where the integrand has a kink
(phi' of ReLU, ELU, SELU jumps at 0: with an odd number of nodes the node at z = 0 alone biases
E[relu'(z)^2] by several per cent) or a sharp transition (tanh at large q). The panel rule reaches
machine precision for every activation of ``gradatlas.run.activations``; the tests check both rules
against closed forms and a Monte-Carlo estimate.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional, Union

import numpy as np
import pandas as pd
import torch

from gradatlas.run import inits
from gradatlas.run.activations import Activation, PReLU, make_activation

# Pre-activation variances outside [Q_MIN, Q_MAX] are treated as 0 and infinity.
Q_MIN = 1e-12
Q_MAX = 1e12
# Layers whose rows are not hidden layers of the fully connected stack.
NON_HIDDEN = ("head", "stem")
# The columns of the layers table that the measurements read.
LAYER_KEYS = ("run", "step", "layer", "name", "quantity", "value")

ActivationLike = Union[str, Activation]


# --------------------------------------------------------------------------------------------
# Quadrature
# --------------------------------------------------------------------------------------------

@lru_cache(maxsize=8)
def _hermite_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    nodes, weights = np.polynomial.hermite_e.hermegauss(n)
    return nodes, weights / weights.sum()  # weights of the standard normal (sum 1)


@lru_cache(maxsize=8)
def _legendre_rule(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


# Truncation of the standard normal: P(|z| > 12) ~ 4e-33, far below float64 resolution of 1.
_Z_MAX = 12.0


@lru_cache(maxsize=256)
def _panel_rule(q: float, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (standard-normal measure) of the composite panel rule for variance q."""
    scale = math.sqrt(q)
    # Breakpoints: the kink at 0, unit steps of z (the Gaussian's own scale) and powers of two
    # of the pre-activation x = sqrt(q) z (the activation's scale), so each panel is smooth.
    pos = {float(k) for k in range(1, int(_Z_MAX) + 1)}
    pos.update(2.0 ** k / scale for k in range(-6, 8) if 2.0 ** k / scale < _Z_MAX)
    edges = np.array(sorted({0.0, *pos, *(-p for p in pos)}))
    x, w = _legendre_rule(points)
    left, right = edges[:-1, None], edges[1:, None]
    nodes = (0.5 * (right - left) * x + 0.5 * (right + left)).ravel()
    weights = (0.5 * (right - left) * w).ravel() * np.exp(-0.5 * nodes**2) / math.sqrt(2.0 * math.pi)
    return nodes, weights


def gaussian_expectation(f: Callable[[np.ndarray], np.ndarray], q: float = 1.0, *,
                         method: str = "panels", points: int = 100) -> float:
    """E[f(sqrt(q) z)] for z ~ N(0, 1).

    Args:
        f: a vectorised function of a float64 array.
        q: the variance of the argument (>= 0); q = 0 gives f(0).
        method: ``"panels"`` (composite Gauss-Legendre, default; accurate for kinks at 0) or
            ``"hermite"`` (Gauss-Hermite with ``points`` nodes, via ``hermegauss``).
        points: nodes of the Gauss-Hermite rule, or per panel of the panel rule (capped at 32
            there, where 16-32 already reach machine precision).

    Raises:
        ValueError: for a negative or non-finite q, or an unknown method.
    """
    if not (q >= 0 and math.isfinite(q)):
        raise ValueError(f"q must be finite and >= 0, got {q}")
    if q == 0:
        return float(np.asarray(f(np.zeros(1)), dtype=np.float64)[0])
    if method == "hermite":
        nodes, weights = _hermite_rule(points)
    elif method == "panels":
        nodes, weights = _panel_rule(float(q), min(points, 32))
    else:
        raise ValueError(f"unknown method {method!r}; known: panels, hermite")
    values = np.asarray(f(math.sqrt(q) * nodes), dtype=np.float64)
    return float(np.dot(weights, values))


def gaussian_expectations(f: Callable[[np.ndarray], np.ndarray], qs: np.ndarray, points: int = 32) -> np.ndarray:
    """``gaussian_expectation`` (panel rule) for many positive variances with one call of ``f``."""
    rules = [_panel_rule(float(q), min(points, 32)) for q in np.asarray(qs, dtype=np.float64)]
    if not rules:
        return np.zeros(0)
    args = np.concatenate([math.sqrt(q) * nodes for q, (nodes, _) in zip(qs, rules)])
    values = np.asarray(f(args), dtype=np.float64)
    out, start = np.empty(len(rules)), 0
    for i, (nodes, weights) in enumerate(rules):
        out[i] = np.dot(weights, values[start:start + len(nodes)])
        start += len(nodes)
    return out


def _as_activation(activation: ActivationLike, slope: Optional[float] = None) -> Activation:
    # float64 throughout (PReLU's learned slope is a float32 parameter); a copy, so that a
    # caller's module keeps its dtype.
    if isinstance(activation, Activation):
        return copy.deepcopy(activation).double()
    module = make_activation(activation, slope).double()
    if isinstance(module, PReLU):
        # The float32 parameter rounded the slope; set it again in float64.
        with torch.no_grad():
            module.weight.fill_(0.25 if slope is None else float(slope))
    return module


def activation_functions(activation: ActivationLike, slope: Optional[float] = None
                         ) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """phi and phi' of an activation (a name or an ``Activation``) as float64 numpy functions."""
    module = _as_activation(activation, slope)

    def phi(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.as_tensor(x, dtype=torch.float64)).numpy()

    def dphi(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module.derivative(torch.as_tensor(x, dtype=torch.float64)).numpy()

    return phi, dphi


# --------------------------------------------------------------------------------------------
# Length map, fixed point, chi_1
# --------------------------------------------------------------------------------------------

def length_map(q: float, activation: ActivationLike, sigma_w2: float, sigma_b2: float = 0.0,
               slope: Optional[float] = None) -> float:
    """One step of the length map: sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2."""
    phi, _ = activation_functions(activation, slope)
    return sigma_w2 * gaussian_expectation(lambda x: phi(x) ** 2, q) + sigma_b2


def fixed_point(activation: ActivationLike, sigma_w2: float, sigma_b2: float = 0.0,
                slope: Optional[float] = None, q0: float = 1.0, max_iter: int = 200) -> float:
    """The fixed point q* of the length map reached from q0 (default 1).

    The map is increasing in q for the activations here, so iterating it from q0 moves
    monotonically to the nearest fixed point in the direction of ``map(q0) - q0``. Instead of
    iterating (which converges only like 1/l at critical points such as tanh at sigma_w^2 = 1),
    the root of ``map(q) - q`` is bracketed on a logarithmic grid in that direction (factor
    10^(1/4) per step, at most ``max_iter`` steps) and refined by bisection.

    Returns:
        ``0.0`` when the map shrinks every q below q0 down to ``Q_MIN`` (no positive fixed point
        below q0: e.g. tanh or ReLU with sigma_b^2 = 0 and sigma_w^2 < 1 resp. < 2);
        ``math.inf`` when it grows every q above q0 up to ``Q_MAX`` (e.g. ReLU with
        sigma_w^2 > 2); ``q0`` itself when q0 is a fixed point, which for positively
        homogeneous activations at criticality (ReLU at sigma_w^2 = 2, linear at 1) holds for
        *every* q: there any value is a fixed point and q0 is returned.
    """
    if sigma_w2 < 0 or sigma_b2 < 0:
        raise ValueError(f"variances must be >= 0, got sigma_w2={sigma_w2}, sigma_b2={sigma_b2}")
    phi, _ = activation_functions(activation, slope)

    def gap(q: float) -> float:
        return sigma_w2 * gaussian_expectation(lambda x: phi(x) ** 2, q) + sigma_b2 - q

    g0 = gap(q0)
    if abs(g0) <= 1e-12 * max(q0, 1.0):
        return float(q0)
    direction = -1.0 if g0 < 0 else 1.0
    step = 10.0 ** (0.25 * direction)
    inner, q = q0, q0
    for _ in range(max_iter):
        q = q * step
        if q < Q_MIN:
            return 0.0
        if q > Q_MAX:
            return math.inf
        g = gap(q)
        if g == 0.0 or math.copysign(1.0, g) != math.copysign(1.0, g0):
            break
        inner = q
    else:
        return 0.0 if direction < 0 else math.inf
    # Bisection in log q between inner (same sign as g0) and q (sign changed).
    lo, hi = (q, inner) if direction < 0 else (inner, q)
    g_lo = gap(lo)
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        g_mid = gap(mid)
        if g_mid == 0.0 or hi / lo - 1.0 < 1e-14:
            return mid
        if math.copysign(1.0, g_mid) == math.copysign(1.0, g_lo):
            lo, g_lo = mid, g_mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def chi1(activation: ActivationLike, sigma_w2: float, sigma_b2: float = 0.0,
         slope: Optional[float] = None, q: Optional[float] = None) -> float:
    """chi_1 = sigma_w^2 E[phi'(sqrt(q) z)^2] at ``q`` (default: the fixed point q*).

    q = 0 and q = inf are evaluated as one-sided limits, at ``Q_MIN`` and ``Q_MAX``: at q = 0
    this gives phi'(0+)^2-like averages that respect the kink of ReLU-like units (ReLU:
    sigma_w^2 / 2, not phi'(0)^2 = 0), and for positively homogeneous activations (ReLU, leaky
    ReLU, PReLU, linear, step) chi_1 does not depend on q at all.
    """
    if q is None:
        q = fixed_point(activation, sigma_w2, sigma_b2, slope)
    q_eval = Q_MAX if q == math.inf else min(max(q, Q_MIN), Q_MAX)
    _, dphi = activation_functions(activation, slope)
    return sigma_w2 * gaussian_expectation(lambda x: dphi(x) ** 2, q_eval)


def predicted_factor(activation: ActivationLike, sigma_w2: float, sigma_b2: float = 0.0,
                     slope: Optional[float] = None, q: Optional[float] = None) -> float:
    """sqrt(chi_1): the predicted per-layer factor of the backpropagated gradient norm."""
    return math.sqrt(chi1(activation, sigma_w2, sigma_b2, slope, q))


def layerwise_factor(activation: ActivationLike, sigma_w2: float, second_moments: np.ndarray,
                     sigma_b2: float = 0.0, slope: Optional[float] = None) -> float:
    """Per-layer factor predicted from the *measured* variances instead of the fixed point.

    A finite-depth network need not have reached q* (tanh at sigma_w^2 = 1 approaches q* = 0
    like 1/l). Given the measured second moments E[h_l^2] = act_mean^2 + act_std^2 of the
    hidden outputs h_0..h_{L-1}, layer l >= 1 has pre-activation variance
    q_l = sigma_w^2 E[h_{l-1}^2] + sigma_b^2; the step from layer l+1 back to l scales the
    gradient norm by sqrt(sigma_w^2 E[phi'(sqrt(q_l) z)^2]). Returns the geometric mean of these
    steps over l = 1..L-2 (the steps a fit over the hidden layers sees; layer 0's variance
    depends on the input, not on the map), or NaN with fewer than one usable step.
    """
    moments = np.asarray(second_moments, dtype=np.float64)
    qs = sigma_w2 * moments[: max(len(moments) - 2, 0)] + sigma_b2  # q_l for l = 1..L-2
    qs = qs[np.isfinite(qs) & (qs >= 0)]
    if len(qs) == 0:
        return float("nan")
    _, dphi = activation_functions(activation, slope)
    chis = sigma_w2 * gaussian_expectations(lambda x: dphi(x) ** 2, np.clip(qs, Q_MIN, Q_MAX))
    chis = chis[chis > 0]
    return float(np.exp(0.5 * np.mean(np.log(chis)))) if len(chis) else float("nan")


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------

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


def _log_linear_fit(x: np.ndarray, values: np.ndarray) -> dict[str, float]:
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
    profile = hidden_profile(layers_of_one_run, "backprop_norm", step)
    profile = profile[profile.index >= from_layer]
    underflow = hidden_profile(layers_of_one_run, "underflow", step).reindex(profile.index)
    lost = (underflow.to_numpy() > 0) & np.isfinite(underflow.to_numpy())
    values = np.where(lost, np.nan, profile.to_numpy())
    fit = _log_linear_fit(profile.index.to_numpy(dtype=np.float64), values)
    fit["excluded"] = int(lost.sum())
    return fit


def measured_factor(layers_of_one_run: LayersLike, step: Optional[int] = 0) -> float:
    """The measured per-layer gradient factor exp(-slope) of one run (see ``factor_fit``)."""
    return factor_fit(layers_of_one_run, step)["factor"]


# --------------------------------------------------------------------------------------------
# Prediction against measurement
# --------------------------------------------------------------------------------------------

def _isnan(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def weight_variance(init: str, width: float, gain: float = 1.0, init_std: float = 0.01) -> float:
    """sigma_w^2 = fan_in * std^2 of a width x width hidden weight drawn by ``init``."""
    fan = int(width)
    std = inits.weight_std(init, fan, fan, 1.0 if _isnan(gain) else float(gain),
                           0.01 if _isnan(init_std) else float(init_std))
    return fan * std**2


def bias_variance(init: str, width: float, bias: Optional[float]) -> Optional[float]:
    """sigma_b^2 of the hidden biases, or None when they are not zero-mean random (a constant
    nonzero ``bias``), which mean-field theory with centred biases does not describe.

    A set ``bias`` of 0 and every non-default init give zero biases; PyTorch's default draws
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance 1 / (3 fan_in).
    """
    if not _isnan(bias):
        return 0.0 if float(bias) == 0.0 else None
    return 1.0 / (3.0 * float(width)) if init == "default" else 0.0


THEORY_COLUMNS = ("run", "study", "cell", "seed", "activation", "slope", "init", "gain", "init_std",
                  "width", "depth", "sigma_w2", "sigma_b2", "q_star", "chi1", "predicted_factor",
                  "measured_factor", "fit_r2", "predicted_factor_layerwise", "rel_error", "theory",
                  "fit_n", "underflow_excluded")
# The theories of the table (column ``theory``): what each row's prediction comes from.
MEANFIELD = "meanfield_mlp"


@lru_cache(maxsize=1024)
def _prediction(activation: str, slope: Optional[float], sigma_w2: float, sigma_b2: float) -> tuple[float, float]:
    q_star = fixed_point(activation, sigma_w2, sigma_b2, slope)
    return q_star, chi1(activation, sigma_w2, sigma_b2, slope, q_star)


def theory_table(runs: pd.DataFrame, layers: pd.DataFrame,
                 timesteps: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Prediction against measurement of the gradient factor at initialization, one row per run.

    Column ``theory`` says which prediction a row holds:

    - ``meanfield_mlp``: plain MLP runs (``model == 'mlp'``, ``norm`` none, an init whose std
      ``inits.weight_std`` knows, zero-mean biases, see ``bias_variance``), sqrt(chi_1) at the
      fixed point. Runs of any study qualify; claim 15 reads the ``meanfield`` study.
    - ``batchnorm_mlp``, ``residual_mlp``, ``rnn_time``: see ``beyond_meanfield_rows``
      (batch-norm MLPs, pre-activation residual MLPs, vanilla RNNs over time; the last needs
      ``timesteps``).

    Returns:
        Columns ``THEORY_COLUMNS``: the run's factors, ``sigma_w2``, ``sigma_b2``, ``q_star``,
        ``chi1``, ``predicted_factor``, ``measured_factor`` and its fit ``fit_r2`` over
        ``fit_n`` points, ``predicted_factor_layerwise`` (mean field only: from the measured
        act statistics, see ``layerwise_factor``), ``rel_error = |measured - predicted| /
        predicted`` and ``underflow_excluded`` (points left out of the fit because their
        float32 gradient underflowed).
    """
    if runs.empty or layers.empty:
        return pd.DataFrame(columns=list(THEORY_COLUMNS))
    # isin on the (categorical) columns directly: no per-row string conversion of a large table.
    mask = (layers["step"] == 0) & layers["quantity"].isin(["backprop_norm", "act_mean", "act_std", "underflow"])
    by_run = split_layers(layers.loc[mask, [c for c in LAYER_KEYS if c in layers]])
    meanfield = theory_table_from_arrays(runs, by_run)
    beyond = beyond_meanfield_rows(runs, by_run, split_timesteps(timesteps))
    parts = [frame for frame in (meanfield, beyond) if len(frame)]
    if not parts:
        return pd.DataFrame(columns=list(THEORY_COLUMNS))
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _qualifying(runs: pd.DataFrame) -> pd.DataFrame:
    if runs.empty:
        return runs
    norm = runs["norm"].astype(str) if "norm" in runs else pd.Series("none", index=runs.index)
    chosen = runs[(runs["model"].astype(str) == "mlp") & norm.isin(["none", "nan", "None"])]
    return chosen[chosen["init"].astype(str).isin(inits.INITIALIZERS)]


def theory_table_from_arrays(runs: pd.DataFrame, layers_by_run: dict[str, LayerArrays]) -> pd.DataFrame:
    """The ``meanfield_mlp`` rows of ``theory_table``, from layers already split by run
    (``split_layers``)."""
    rows = []
    chosen = _qualifying(runs)
    by_run = layers_by_run
    for run in chosen.itertuples(index=False):
        part = by_run.get(str(run.run))
        if part is None or len(part) == 0 or not np.isfinite(float(run.width)):
            continue
        sigma_b2 = bias_variance(str(run.init), run.width, getattr(run, "bias", None))
        if sigma_b2 is None:
            continue
        slope = None if _isnan(getattr(run, "slope", None)) else float(run.slope)
        sigma_w2 = weight_variance(str(run.init), run.width, run.gain, getattr(run, "init_std", None))
        activation = str(run.activation)
        q_star, chi = _prediction(activation, slope, float(sigma_w2), float(sigma_b2))
        fit = factor_fit(part)
        mean = hidden_profile(part, "act_mean")
        std = hidden_profile(part, "act_std")
        moments = (mean**2 + std**2).to_numpy() if len(mean) and len(mean) == len(std) else np.array([])
        predicted = math.sqrt(chi)
        rows.append({
            "run": str(run.run), "study": str(run.study), "cell": str(run.cell), "seed": run.seed,
            "activation": activation, "slope": slope, "init": str(run.init), "gain": run.gain,
            "init_std": getattr(run, "init_std", np.nan), "width": run.width, "depth": run.depth,
            "sigma_w2": sigma_w2, "sigma_b2": sigma_b2, "q_star": q_star, "chi1": chi,
            "predicted_factor": predicted, "measured_factor": fit["factor"], "fit_r2": fit["r2"],
            "predicted_factor_layerwise": layerwise_factor(activation, sigma_w2, moments, sigma_b2, slope),
            "rel_error": abs(fit["factor"] - predicted) / predicted if predicted > 0 else np.nan,
            "theory": MEANFIELD, "fit_n": fit["n"], "underflow_excluded": fit["excluded"],
        })
    return pd.DataFrame(rows, columns=list(THEORY_COLUMNS))


# --------------------------------------------------------------------------------------------
# Beyond the mean-field MLP: batch norm, residual blocks, recurrence over time
# --------------------------------------------------------------------------------------------

BATCHNORM = "batchnorm_mlp"
RESIDUAL = "residual_mlp"
RNN_TIME = "rnn_time"


def batchnorm_chi(activation: ActivationLike, slope: Optional[float] = None) -> float:
    """Per-layer growth of the squared gradient norm backward through Linear -> BN -> phi at
    initialization, in the large-batch mean-field limit (Yang et al. 2019):

        E[phi'(u)^2] / Var[phi(u)],    u ~ N(0, 1).

    Batch norm makes every pre-activation u a unit Gaussian over the batch, whatever the
    weights; the next layer's z has variance sigma_w^2 Var[phi(u)], by which its batch norm
    divides the gradient, while phi' and W^T multiply it by sigma_w^2 E[phi'(u)^2]: the weight
    scale cancels. ReLU: (1/2) / ((pi - 1) / (2 pi)) = pi / (pi - 1). Finite batches of B
    examples shrink it by O(2/B) (batch norm's backward removes the mean and the u direction).
    """
    phi, dphi = activation_functions(activation, slope)
    mean = gaussian_expectation(phi, 1.0)
    variance = gaussian_expectation(lambda x: phi(x) ** 2, 1.0) - mean**2
    return gaussian_expectation(lambda x: dphi(x) ** 2, 1.0) / variance if variance > 0 else math.inf


def second_moment_variance(activation: ActivationLike, second_moment: float, slope: Optional[float] = None) -> float:
    """The variance q with E[phi(sqrt(q) z)^2] = ``second_moment`` (NaN if none in
    [Q_MIN, Q_MAX]); E[phi^2] increases with q for the activations here (bisection in log q)."""
    phi, _ = activation_functions(activation, slope)

    def gap(q: float) -> float:
        return gaussian_expectation(lambda x: phi(x) ** 2, q) - second_moment

    lo, hi = Q_MIN, Q_MAX
    if not (math.isfinite(second_moment) and gap(lo) <= 0 <= gap(hi)):
        return float("nan")
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        if gap(mid) < 0:
            lo = mid
        else:
            hi = mid
        if hi / lo - 1.0 < 1e-12:
            break
    return math.sqrt(lo * hi)


def residual_factors(activation: ActivationLike, sigma_w2: float, q0: float, blocks: int,
                     sigma_b2: float = 0.0, slope: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
    """Pre-activation residual MLP ``h_l = h_{l-1} + W_l phi(h_{l-1}) + b_l`` in mean field.

    The residual stream's variance adds up, q_l = q_{l-1} + sigma_w^2 E[phi(sqrt(q_{l-1}) z)^2]
    + sigma_b^2, and backward the skip adds the identity to the branch, so the squared gradient
    grows per block by 1 + sigma_w^2 E[phi'(sqrt(q_{l-1}) z)^2] (cross terms vanish at random
    initialization): never below 1, unlike a plain MLP's chi_1.

    Args:
        q0: the variance of the first block's input (the stem's output).
        blocks: the number of blocks.

    Returns:
        ``(q, factors)``: per block l = 1..blocks its input variance and the per-block factor
        sqrt(1 + sigma_w^2 E[phi'(sqrt(q) z)^2]) of the gradient norm, from block l to l - 1.
    """
    phi, dphi = activation_functions(activation, slope)
    qs, factors, q = np.empty(blocks), np.empty(blocks), float(q0)
    for index in range(blocks):
        qs[index] = q
        q_eval = min(max(q, Q_MIN), Q_MAX)
        factors[index] = math.sqrt(1.0 + sigma_w2 * gaussian_expectation(lambda x: dphi(x) ** 2, q_eval))
        q = q + sigma_w2 * gaussian_expectation(lambda x: phi(x) ** 2, q_eval) + sigma_b2
    return qs, factors


def rnn_time_factors(activation: ActivationLike, sigma_u2: float, input_var: float, sigma_b2: float,
                     length: int, slope: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
    """Vanilla RNN ``h_t = phi(W x_t + U h_{t-1} + b)`` from h_0 = 0, mean field over time.

    The pre-activation a_t has variance q_t = sigma_u^2 E[phi(sqrt(q_{t-1}) z)^2] + v_x +
    sigma_b^2 (q_1 = v_x + sigma_b^2), with v_x = Var[(W x_t)_i] the input drive; backward,
    dLoss/dh_{t-1} = U^T (phi'(a_t) * dLoss/dh_t) shrinks the squared norm per step by
    chi_t = sigma_u^2 E[phi'(sqrt(q_t) z)^2] (the same U at every step is treated as fresh,
    the usual mean-field assumption). Without input drive a tanh RNN with sigma_u^2 < 1 has
    q* = 0 and factor sigma_u; the drive moves q off 0 and lowers it.

    Returns:
        ``(q, factors)`` for t = 1..length: q_t and sqrt(chi_t), the factor of the gradient
        norm from h_t back to h_{t-1}.
    """
    phi, dphi = activation_functions(activation, slope)
    qs, factors, second = np.empty(length), np.empty(length), 0.0
    for index in range(length):
        q = sigma_u2 * second + input_var + sigma_b2
        q_eval = min(max(q, Q_MIN), Q_MAX)
        qs[index] = q
        factors[index] = math.sqrt(sigma_u2 * gaussian_expectation(lambda x: dphi(x) ** 2, q_eval))
        second = gaussian_expectation(lambda x: phi(x) ** 2, q_eval)
    return qs, factors


def adding_input_power(length: int) -> float:
    """E ||x_t||^2 of the adding problem (``data.adding_problem``), averaged over t: values
    uniform on [0, 1) (E v^2 = 1/3) and two markers of 1 per sequence (2 / length)."""
    return 1.0 / 3.0 + 2.0 / float(length)


# Data sets whose mean squared input per step the RNN theory knows: name -> f(length).
INPUT_POWER: dict[str, Callable[[int], float]] = {"adding": adding_input_power}
# Input width of those data sets (channels per step).
INPUT_DIM: dict[str, int] = {"adding": 2}


def rnn_variances(init: str, width: float, input_dim: int, gain: float, init_std: float,
                  bias: Optional[float]) -> Optional[tuple[float, float, float]]:
    """(sigma_u^2, per-entry variance of W, sigma_b^2) of a vanilla RNN cell (``recurrent.Cell``),
    or None for a constant nonzero bias.

    ``default``: every weight and both biases U(-1/sqrt(H), 1/sqrt(H)) (variance 1/(3H)), the
    weights times ``gain``; otherwise the initializer's std for each matrix and zero biases
    (a set ``bias`` goes to bias_ih, bias_hh is 0).
    """
    hidden = int(width)
    gain = 1.0 if _isnan(gain) else float(gain)
    init_std = 0.01 if _isnan(init_std) else float(init_std)
    if init == "default":
        entry_u = entry_w = gain**2 / (3.0 * hidden)
        sigma_b2 = 2.0 / (3.0 * hidden)
    else:
        entry_u = inits.weight_std(init, hidden, hidden, gain, init_std) ** 2
        entry_w = inits.weight_std(init, input_dim, hidden, gain, init_std) ** 2
        sigma_b2 = 0.0
    if not _isnan(bias):
        if float(bias) != 0.0:
            return None
        sigma_b2 = 0.0
    return hidden * entry_u, entry_w, sigma_b2


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
    fit = _log_linear_fit(norms.index.to_numpy(np.float64), np.where(lost, np.nan, norms.to_numpy()))
    fit["excluded"] = int(lost.sum())
    return fit


def split_timesteps(timesteps: Optional[pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The step-0 rows of a timesteps table by ``run`` (hidden_grad_norm and underflow only)."""
    if timesteps is None or timesteps.empty or "run" not in timesteps:
        return {}
    part = timesteps[(timesteps["step"] == 0) & timesteps["quantity"].isin(["hidden_grad_norm", "underflow"])]
    part = part[["run", "step", "t", "quantity", "value"]]
    return {str(run): rows for run, rows in part.groupby(part["run"].astype(str), sort=False)}


def _column(run, name: str):
    return getattr(run, name, None)


def _base_row(run, theory: str) -> dict:
    return {"run": str(run.run), "study": str(run.study), "cell": str(run.cell), "seed": run.seed,
            "activation": str(run.activation),
            "slope": None if _isnan(_column(run, "slope")) else float(run.slope), "init": str(run.init),
            "gain": run.gain, "init_std": _column(run, "init_std"), "width": run.width, "depth": run.depth,
            "predicted_factor_layerwise": np.nan, "theory": theory}


def _with_fit(row: dict, predicted: float, fit: dict) -> dict:
    row.update(predicted_factor=predicted, measured_factor=fit["factor"], fit_r2=fit["r2"], fit_n=fit["n"],
               underflow_excluded=fit["excluded"],
               rel_error=abs(fit["factor"] - predicted) / predicted if predicted > 0 else np.nan)
    return row


def _batchnorm_row(run, part: LayerArrays) -> Optional[dict]:
    # Layer 0's input variance is set by the data, not by batch norm of a previous layer: the
    # fit starts at layer 1 (the steps 1 -> 0 and the head's have other factors).
    slope = None if _isnan(_column(run, "slope")) else float(run.slope)
    chi = batchnorm_chi(str(run.activation), slope)
    row = _base_row(run, BATCHNORM)
    row.update(sigma_w2=np.nan, sigma_b2=np.nan, q_star=1.0, chi1=chi)
    return _with_fit(row, math.sqrt(chi), factor_fit(part, 0, from_layer=1))


def _residual_row(run, part: LayerArrays) -> Optional[dict]:
    sigma_b2 = bias_variance(str(run.init), run.width, _column(run, "bias"))
    if sigma_b2 is None:
        return None
    slope = None if _isnan(_column(run, "slope")) else float(run.slope)
    sigma_w2 = weight_variance(str(run.init), run.width, run.gain, _column(run, "init_std"))
    mean, std = hidden_profile(part, "act_mean"), hidden_profile(part, "act_std")
    if len(mean) < 3 or len(std) != len(mean):
        return None
    # The first block's input variance, from its measured phi(h_0): E[phi(h_0)^2] = mean^2 + std^2.
    q0 = second_moment_variance(str(run.activation), float(mean.iloc[0] ** 2 + std.iloc[0] ** 2), slope)
    if not math.isfinite(q0):
        return None
    qs, factors = residual_factors(str(run.activation), sigma_w2, q0, len(mean), sigma_b2, slope)
    # The fit over blocks 1..B sees the steps from block l to l - 1 for l = 2..B, whose factors
    # belong to the inputs of blocks 2..B.
    predicted = float(np.exp(np.mean(np.log(factors[1:]))))
    row = _base_row(run, RESIDUAL)
    row.update(sigma_w2=sigma_w2, sigma_b2=sigma_b2, q_star=float(qs[-1]), chi1=float(np.mean(factors[1:] ** 2)))
    return _with_fit(row, predicted, factor_fit(part, 0))


def _rnn_row(run, steps: pd.DataFrame) -> Optional[dict]:
    data = str(_column(run, "data"))
    if data not in INPUT_POWER or _isnan(_column(run, "length")):
        return None
    variances = rnn_variances(str(run.init), run.width, INPUT_DIM[data], run.gain, _column(run, "init_std"),
                              _column(run, "bias"))
    if variances is None:
        return None
    sigma_u2, entry_w, sigma_b2 = variances
    length = int(run.length)
    input_var = entry_w * INPUT_POWER[data](length)
    qs, factors = rnn_time_factors(str(run.activation), sigma_u2, input_var, sigma_b2, length)
    # The fit over t = 1..T sees the steps from t to t - 1 for t = 2..T.
    predicted = float(np.exp(np.mean(np.log(factors[1:])))) if length > 1 else float("nan")
    row = _base_row(run, RNN_TIME)
    row.update(sigma_w2=sigma_u2, sigma_b2=sigma_b2, q_star=float(qs[-1]), chi1=float(factors[-1] ** 2))
    return _with_fit(row, predicted, time_factor_fit(steps, 0))


def beyond_meanfield_rows(runs: pd.DataFrame, layers_by_run: dict[str, LayerArrays],
                          timesteps_by_run: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Theory rows for the architectures past the plain MLP, from their step-0 probes:

    - ``batchnorm_mlp``: MLPs with ``norm == 'batch'`` (any init: batch norm cancels the weight
      scale), predicted sqrt(``batchnorm_chi``), measured over hidden layers 1..L-1.
    - ``residual_mlp``: ``resmlp`` without normalization, zero-mean biases and a known init
      std; predicted from ``residual_factors`` (geometric mean over the fitted block steps,
      starting from the first block's measured input variance), measured over the blocks.
    - ``rnn_time``: one-layer vanilla ``rnn`` on a data set of ``INPUT_POWER``, predicted from
      ``rnn_time_factors`` with the input drive (geometric mean over t = 2..T), measured from
      ``hidden_grad_norm`` over t (``time_factor_fit``).
    """
    rows = []
    if runs.empty:
        return pd.DataFrame(columns=list(THEORY_COLUMNS))
    norm = runs["norm"].astype(str) if "norm" in runs else pd.Series("none", index=runs.index)
    model = runs["model"].astype(str)
    plain_norm = norm.isin(["none", "nan", "None"])
    known = runs["init"].astype(str).isin(inits.INITIALIZERS)
    depth = runs["depth"] if "depth" in runs else pd.Series(np.nan, index=runs.index)
    for run in runs[(model == "mlp") & (norm == "batch")].itertuples(index=False):
        part = layers_by_run.get(str(run.run))
        if part is not None and len(part):
            rows.append(_batchnorm_row(run, part))
    for run in runs[(model == "resmlp") & plain_norm & known].itertuples(index=False):
        part = layers_by_run.get(str(run.run))
        if part is not None and len(part) and np.isfinite(float(run.width)):
            rows.append(_residual_row(run, part))
    for run in runs[(model == "rnn") & plain_norm & known & (depth == 1)].itertuples(index=False):
        steps = timesteps_by_run.get(str(run.run))
        if steps is not None and len(steps) and np.isfinite(float(run.width)):
            rows.append(_rnn_row(run, steps))
    return pd.DataFrame([r for r in rows if r is not None], columns=list(THEORY_COLUMNS))

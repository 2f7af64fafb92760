"""The theory table: prediction against measurement of the gradient factor at init, one row per run."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import numpy as np
import pandas as pd

from gradatlas.analysis.theory.batchnorm import MIN_BATCH, batchnorm_chi
from gradatlas.analysis.theory.fits import (
    LAYER_KEYS, LayerArrays, example_values, factor_fit, fitted_layers, hidden_profile, split_layers, split_timesteps,
    time_factor_fit)
from gradatlas.analysis.theory.length_map import classify, per_example_factor, unstable_fixed_points
from gradatlas.analysis.theory.meanfield import chi1, fixed_point, layerwise_factor
from gradatlas.analysis.theory.recurrent import INPUT_DIM, INPUT_POWER, rnn_predicted_factor, rnn_time_factors
from gradatlas.analysis.theory.residual import residual_factors, second_moment_variance
from gradatlas.analysis.theory.variances import bias_variance, is_missing, rnn_variances, weight_variance
from gradatlas.run import inits
from gradatlas.run.data import MNIST1D_CLASSES, MNIST1D_LENGTH

THEORY_COLUMNS = ("run", "study", "cell", "seed", "activation", "slope", "init", "gain", "init_std",
                  "width", "depth", "sigma_w2", "sigma_b2", "q_star", "chi1", "predicted_factor",
                  "measured_factor", "fit_r2", "predicted_factor_layerwise", "rel_error", "theory",
                  "fit_n", "underflow_excluded", "predicted_factor_per_example", "rel_error_per_example",
                  "regime", "q_first_low", "q_first_high")
# The theories of the table (column ``theory``): what each row's prediction comes from.
MEANFIELD = "meanfield_mlp"
BATCHNORM = "batchnorm_mlp"
RESIDUAL = "residual_mlp"
RNN_TIME = "rnn_time"
# The per-example quantity the per-example prediction starts from, and the data sets whose
# input width (the first layer's fan_in) and classes it knows.
INPUT_NORMS = "input_sq_norm"
DATA_SHAPES: dict[str, tuple[int, int]] = {"mnist1d": (MNIST1D_LENGTH, MNIST1D_CLASSES)}


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
    mask = (layers["step"] == 0) & layers["quantity"].isin(["backprop_norm", "act_mean", "act_std", "underflow",
                                                             INPUT_NORMS])
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
        sigma_b2 = bias_variance(str(run.init), run.width, getattr(run, "bias", None), getattr(run, "bias_std", None))
        if sigma_b2 is None:
            continue
        slope = None if is_missing(getattr(run, "slope", None)) else float(run.slope)
        sigma_w2 = weight_variance(str(run.init), run.width, run.gain, getattr(run, "init_std", None))
        activation = str(run.activation)
        q_star, chi = _prediction(activation, slope, float(sigma_w2), float(sigma_b2))
        fit = factor_fit(part)
        mean = hidden_profile(part, "act_mean")
        std = hidden_profile(part, "act_std")
        moments = (mean**2 + std**2).to_numpy() if len(mean) and len(mean) == len(std) else np.array([])
        predicted = math.sqrt(chi)
        per_example = _per_example(run, part, activation, slope, float(sigma_w2), float(sigma_b2), predicted, chi)
        rows.append({
            "run": str(run.run), "study": str(run.study), "cell": str(run.cell), "seed": run.seed,
            "activation": activation, "slope": slope, "init": str(run.init), "gain": run.gain,
            "init_std": getattr(run, "init_std", np.nan), "width": run.width, "depth": run.depth,
            "sigma_w2": sigma_w2, "sigma_b2": sigma_b2, "q_star": q_star, "chi1": chi,
            "predicted_factor": predicted, "measured_factor": fit["factor"], "fit_r2": fit["r2"],
            "predicted_factor_layerwise": layerwise_factor(activation, sigma_w2, moments, sigma_b2, slope),
            "rel_error": abs(fit["factor"] - predicted) / predicted if predicted > 0 else np.nan,
            "theory": MEANFIELD, "fit_n": fit["n"], "underflow_excluded": fit["excluded"],
            **per_example, "rel_error_per_example": _relative(fit["factor"], per_example["predicted_factor_per_example"]),
        })
    return pd.DataFrame(rows, columns=list(THEORY_COLUMNS))



_NO_PER_EXAMPLE = {"predicted_factor_per_example": np.nan, "regime": "", "q_first_low": np.nan,
                   "q_first_high": np.nan}


def _relative(measured: float, predicted: float) -> float:
    return abs(measured - predicted) / predicted if predicted > 0 else np.nan


def _per_example(run, part: LayerArrays, activation: str, slope: Optional[float], sigma_w2: float,
                 sigma_b2: float, fixed_point_factor: float, chi: float) -> dict:
    """The per-example prediction (``length_map``) of a run that recorded its batch's input
    norms, and its regime (``length_map.classify``); NaN and "" otherwise."""
    norms = example_values(part, INPUT_NORMS)
    shape = DATA_SHAPES.get(str(_column(run, "data")))
    if len(norms) == 0 or shape is None:
        return dict(_NO_PER_EXAMPLE)
    features, classes = shape
    width, init = int(run.width), str(run.init)
    gain = 1.0 if is_missing(run.gain) else float(run.gain)
    init_std = 0.01 if is_missing(_column(run, "init_std")) else float(run.init_std)
    first_b2 = bias_variance(init, features, _column(run, "bias"))
    # q_0 = sigma_1^2 ||x||^2 / fan_in + sigma_b^2 with sigma_1^2 = fan_in std_1^2: std_1^2 ||x||^2.
    q_first = inits.weight_std(init, features, width, gain, init_std) ** 2 * norms + first_b2
    head_w2 = width * inits.weight_std(init, width, classes, gain, init_std) ** 2
    fit = per_example_factor(activation, sigma_w2, q_first, int(run.depth), sigma_b2, slope,
                             layers=fitted_layers(part), head_sigma_w2=head_w2, classes=classes)
    low, high = float(q_first.min()), float(q_first.max())
    unstable = unstable_fixed_points(activation, sigma_w2, sigma_b2, slope, max(low / 2, 1e-9), high * 2)
    return {"predicted_factor_per_example": fit["factor"],
            "regime": classify(q_first, unstable, chi, fixed_point_factor, fit["factor"], width),
            "q_first_low": low, "q_first_high": high}


def _column(run, name: str):
    return getattr(run, name, None)


def _base_row(run, theory: str) -> dict:
    return {"run": str(run.run), "study": str(run.study), "cell": str(run.cell), "seed": run.seed,
            "activation": str(run.activation),
            "slope": None if is_missing(_column(run, "slope")) else float(run.slope), "init": str(run.init),
            "gain": run.gain, "init_std": _column(run, "init_std"), "width": run.width, "depth": run.depth,
            "predicted_factor_layerwise": np.nan, "theory": theory, **_NO_PER_EXAMPLE,
            "rel_error_per_example": np.nan}


def _with_fit(row: dict, predicted: float, fit: dict) -> dict:
    row.update(predicted_factor=predicted, measured_factor=fit["factor"], fit_r2=fit["r2"], fit_n=fit["n"],
               underflow_excluded=fit["excluded"],
               rel_error=abs(fit["factor"] - predicted) / predicted if predicted > 0 else np.nan)
    return row


def _batchnorm_row(run, part: LayerArrays) -> Optional[dict]:
    # Layer 0's input variance is set by the data, not by batch norm of a previous layer: the
    # fit starts at layer 1 (the steps 1 -> 0 and the head's have other factors).
    slope = None if is_missing(_column(run, "slope")) else float(run.slope)
    batch = _column(run, "batch_size")
    batch = int(batch) if not is_missing(batch) and int(batch) >= MIN_BATCH else None
    chi = batchnorm_chi(str(run.activation), slope, batch=batch)
    row = _base_row(run, BATCHNORM)
    row.update(sigma_w2=np.nan, sigma_b2=np.nan, q_star=1.0, chi1=chi)
    return _with_fit(row, math.sqrt(chi), factor_fit(part, 0, from_layer=1))


def _residual_row(run, part: LayerArrays) -> Optional[dict]:
    sigma_b2 = bias_variance(str(run.init), run.width, _column(run, "bias"), _column(run, "bias_std"))
    if sigma_b2 is None:
        return None
    slope = None if is_missing(_column(run, "slope")) else float(run.slope)
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
    if data not in INPUT_POWER or is_missing(_column(run, "length")):
        return None
    variances = rnn_variances(str(run.init), run.width, INPUT_DIM[data], run.gain, _column(run, "init_std"),
                              _column(run, "bias"))
    if variances is None:
        return None
    sigma_u2, entry_w, sigma_b2 = variances
    length = int(run.length)
    input_var = entry_w * INPUT_POWER[data](length)
    qs, factors = rnn_time_factors(str(run.activation), sigma_u2, input_var, sigma_b2, length)
    predicted = rnn_predicted_factor(str(run.activation), sigma_u2, input_var, sigma_b2, length)
    row = _base_row(run, RNN_TIME)
    row.update(sigma_w2=sigma_u2, sigma_b2=sigma_b2, q_star=float(qs[-1]), chi1=float(factors[-1] ** 2))
    return _with_fit(row, predicted, time_factor_fit(steps, 0))


def beyond_meanfield_rows(runs: pd.DataFrame, layers_by_run: dict[str, LayerArrays],
                          timesteps_by_run: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Theory rows for the architectures past the plain MLP, from their step-0 probes:

    - ``batchnorm_mlp``: MLPs with ``norm == 'batch'`` (any init: batch norm cancels the weight
      scale), predicted sqrt(``batchnorm_chi``) at the run's batch size, measured over hidden
      layers 1..L-1.
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

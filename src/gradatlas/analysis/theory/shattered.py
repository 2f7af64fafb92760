"""Shattered gradients (Balduzzi et al. 2017): the correlation of input gradients at two nearby
inputs, at initialization, in zero-bias ReLU networks, plain and residual (as in gradatlas).

Two inputs at angle theta_0 (the arc of ``run.probes.arc``). In mean field the pre-activations
of the two inputs are jointly Gaussian, and the gradient of the output with respect to the
input is, at wide layers and under the usual gradient-independence assumption (backward
weights independent of the forward ones), a product of per-layer factors. For ReLU
(arc-cosine kernel of degree 1, Cho and Saul 2009) with J(theta) = sin(theta) + (pi - theta) cos(theta):

- E[relu(u) relu(u')] = sqrt(q q') J(theta) / (2 pi) and E[relu'(u) relu'(u')] = (pi - theta) / (2 pi);
- plain MLP ``z_l = W_l relu(z_{l-1})`` (zero bias): the angle of z_l follows the correlation
  map cos(theta_{l+1}) = J(theta_l) / pi from theta_0 (z_0 = W_0 x keeps the input's angle), and
  the gradient correlation after L hidden layers is prod_{l=0}^{L-1} (1 - theta_l / pi):
  exponential in L while the angles stay small (the rate ~ theta / pi per layer), down to white
  noise (Balduzzi's 2^-L for inputs far apart);
- pre-activation residual MLP ``h_l = h_{l-1} + W_l relu(h_{l-1})`` with stem ``h_0 = W_0 x``
  and head on relu(h_B), weight variance sigma_w^2: the stream's variance grows by
  (1 + sigma_w^2 / 2) per block and its covariance by the same plus the kernel, so
  cos(theta_l) = (cos(theta_{l-1}) + sigma_w^2 J(theta_{l-1}) / (2 pi)) / (1 + sigma_w^2 / 2);
  backward the skip adds the identity, so the correlation is
  (1 - theta_B / pi) prod_{l=1}^{B} (1 + sigma_w^2 (pi - theta_{l-1}) / (2 pi)) / (1 + sigma_w^2 / 2).
  Without batch norm this is still exponential in depth, at a rate smaller by the factor
  (sigma_w^2 / 2) / (1 + sigma_w^2 / 2) per block (1/2 at He initialization); Balduzzi's
  1/sqrt(L) law is for residual networks with batch norm, which this is not.

The formulas are closed forms of the mean field; tests/test_shattered.py checks them against an
independent finite-width simulation in numpy.
"""

from __future__ import annotations

import math

import numpy as np


def _kernel(theta: float) -> float:
    """J(theta) / pi: the correlation after one ReLU layer of inputs at angle theta."""
    return (math.sin(theta) + (math.pi - theta) * math.cos(theta)) / math.pi


def _angle(cosine: float) -> float:
    return math.acos(min(1.0, max(-1.0, cosine)))


def plain_gradient_correlation(theta0: float, depth: int, sigma_w2: float = 2.0) -> float:
    """Correlation of input gradients at inputs theta0 apart after ``depth`` ReLU layers (plain
    MLP); with zero biases it does not depend on the weight variance ``sigma_w2``."""
    theta, product = float(theta0), 1.0
    for _ in range(depth):
        product *= 1.0 - theta / math.pi
        theta = _angle(_kernel(theta))
    return product


def residual_gradient_correlation(theta0: float, depth: int, sigma_w2: float = 2.0) -> float:
    """The same for gradatlas's residual MLP of ``depth`` (a stem and depth - 1 pre-activation blocks)."""
    theta, product = float(theta0), 1.0
    for _ in range(depth - 1):
        product *= (1.0 + sigma_w2 * (math.pi - theta) / (2.0 * math.pi)) / (1.0 + sigma_w2 / 2.0)
        cosine = (math.cos(theta) + sigma_w2 / 2.0 * _kernel(theta)) / (1.0 + sigma_w2 / 2.0)
        theta = _angle(cosine)
    return product * (1.0 - theta / math.pi)


def decay_rate(depths: np.ndarray, correlations: np.ndarray) -> float:
    """The exponential rate k of a fit log(correlation) = a - k depth (least squares); NaN with
    fewer than two positive values."""
    depths, correlations = np.asarray(depths, dtype=np.float64), np.asarray(correlations, dtype=np.float64)
    keep = np.isfinite(correlations) & (correlations > 0)
    if keep.sum() < 2 or np.ptp(depths[keep]) == 0:
        return float("nan")
    return float(-np.polyfit(depths[keep], np.log(correlations[keep]), 1)[0])


# The gradient correlation of each model kind, by the name of its ``model`` factor.
GRADIENT_CORRELATION = {"mlp": plain_gradient_correlation, "resmlp": residual_gradient_correlation}


def arc_correlation(layers_of_one_run, separation: int, step: int = 0) -> float:
    """A run's recorded ``input_grad_corr`` at arc separation ``separation`` (NaN if absent)."""
    from gradatlas.analysis.theory.fits import LayerArrays

    arrays = layers_of_one_run if isinstance(layers_of_one_run, LayerArrays) else LayerArrays.from_frame(layers_of_one_run)
    mask = (~arrays.hidden & (arrays.quantity == "input_grad_corr") & (arrays.step == step)
            & (arrays.layer == separation))
    return float(arrays.value[mask][0]) if mask.any() else float("nan")


def correlation_rows(runs, layers_by_run: dict, separation: int):
    """One row per run (model, depth, seed, sigma_w2, correlation at ``separation``), for the
    runs whose layers (``layers_by_run``: run -> its rows) hold ``input_grad_corr``."""
    import pandas as pd

    from gradatlas.analysis.theory.variances import weight_variance

    rows = []
    for run in runs.itertuples(index=False):
        part = layers_by_run.get(str(run.run))
        value = arc_correlation(part, separation) if part is not None and len(part) else float("nan")
        if np.isfinite(value):
            rows.append({"run": str(run.run), "model": str(run.model), "depth": int(run.depth), "seed": int(run.seed),
                         "sigma_w2": weight_variance(str(run.init), run.width, run.gain, getattr(run, "init_std", None)),
                         "correlation": value})
    return pd.DataFrame(rows, columns=["run", "model", "depth", "seed", "sigma_w2", "correlation"])

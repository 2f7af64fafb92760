"""Jacobian spectra at initialization: the spread of the squared singular values of the
hidden-to-hidden Jacobian from free probability (Pennington, Schoenholz and Ganguli 2017).

``J_l = D_l W_l ... D_1 W_1`` with ``D_l = diag(phi'(z_l))``. In the wide limit the ``D_l`` and
``W_l`` are asymptotically free, the S-transform of ``J J^T`` is the product of the factors'
S-transforms, and its first coefficient gives the *normalized variance* of the squared
singular values (their variance over their squared mean) as a sum over the layers:

    Var(lambda) / E(lambda)^2 = sum_l (mu_2(q_l) / mu_1(q_l)^2 - 1 - s_1),
    mu_k(q) = E[phi'(sqrt(q) z)^(2k)],

``s_1 = -1`` for weights with i.i.d. entries (Marchenko-Pastur: any zero-mean i.i.d. init,
Gaussian or uniform) and ``s_1 = 0`` for orthogonal weights. At criticality
(``sigma_w^2 mu_1 = 1``) the mean is 1 and this is ``sigma^2_{JJ^T} = L (mu_2/mu_1^2 - 1 - s_1)``
of the paper; the normalized form holds off criticality too (a scale factor drops out of
the S-transform's ratio), so it is what is compared. ``q_l``, the variance of ``z_l``, is
iterated through the length map from the first hidden layer's measured second moment, not
taken at the fixed point (tanh at ``sigma_w^2 = 1`` approaches ``q* = 0`` like ``1/(2l)``).

Infinite-width results, compared with each input's normalized variance averaged over inputs
(``jacobian_sv2.normalized_var``): pooling the inputs would add how much their means differ,
a fluctuation of order ``L / n`` at width ``n``. At finite width the sample statistic of ``n``
values also falls short where the spectrum is heavy-tailed (``Var/E^2 <= n - 1``);
tests/test_spectra.py simulates both at the study's width.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from gradatlas.analysis.theory.gaussian import Q_MAX, Q_MIN, ActivationLike, activation_functions, gaussian_expectations
from gradatlas.analysis.theory.variances import bias_variance, is_missing, weight_variance

# First S-transform coefficient of W W^T, per weight ensemble.
WEIGHT_S1 = {"iid": -1.0, "orthogonal": 0.0}
# The recorded statistics of the squared singular values (run.probes jacobian_sv2.<statistic>).
SV2 = "jacobian_sv2"
SPECTRA_COLUMNS = ("run", "study", "cell", "seed", "activation", "init", "ensemble", "gain", "width", "depth",
                   "jacobian_depth", "sv2_mean", "sv2_var", "sv2_max", "normalized_variance",
                   "predicted_normalized_variance", "predicted_mean", "q_first", "q_last")


def weight_ensemble(init: str) -> str:
    """``orthogonal`` for the orthogonal init, ``iid`` for every init of independent entries."""
    return "orthogonal" if init == "orthogonal" else "iid"


def preactivation_variances(activation: ActivationLike, sigma_w2: float, q_first: float, depth: int,
                            sigma_b2: float = 0.0, slope: Optional[float] = None) -> np.ndarray:
    """q_1..q_depth: the length map ``q_{l+1} = sigma_w^2 E[phi(sqrt(q_l) z)^2] + sigma_b^2``
    iterated from ``q_1 = q_first``."""
    phi, _ = activation_functions(activation, slope)
    qs = np.empty(depth)
    q = float(q_first)
    for index in range(depth):
        qs[index] = q
        q_eval = min(max(q, Q_MIN), Q_MAX)
        q = sigma_w2 * float(gaussian_expectations(lambda x: phi(x) ** 2, np.array([q_eval]))[0]) + sigma_b2
    return qs


def slope_moments(activation: ActivationLike, qs: np.ndarray, slope: Optional[float] = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """mu_1 = E[phi'(sqrt(q) z)^2] and mu_2 = E[phi'(sqrt(q) z)^4] for every q of ``qs``."""
    _, dphi = activation_functions(activation, slope)
    q_eval = np.clip(np.asarray(qs, dtype=np.float64), Q_MIN, Q_MAX)
    return (gaussian_expectations(lambda x: dphi(x) ** 2, q_eval),
            gaussian_expectations(lambda x: dphi(x) ** 4, q_eval))


def normalized_variance(activation: ActivationLike, ensemble: str, qs: np.ndarray,
                        slope: Optional[float] = None) -> np.ndarray:
    """Var/E^2 of the squared singular values of ``J_l`` for l = 1..len(qs) (layer l's
    pre-activations of variance ``qs[l - 1]``), weights of ``ensemble`` (``WEIGHT_S1``)."""
    if ensemble not in WEIGHT_S1:
        raise ValueError(f"unknown weight ensemble {ensemble!r}; known: {', '.join(WEIGHT_S1)}")
    mu1, mu2 = slope_moments(activation, qs, slope)
    return np.cumsum(mu2 / mu1**2 - 1.0 - WEIGHT_S1[ensemble])


def mean_sv2(activation: ActivationLike, sigma_w2: float, qs: np.ndarray, slope: Optional[float] = None) -> np.ndarray:
    """E(lambda) of ``J_l`` for l = 1..len(qs): the product of ``chi_1(q_l) = sigma_w^2 mu_1(q_l)``."""
    mu1, _ = slope_moments(activation, qs, slope)
    return np.cumprod(sigma_w2 * mu1)


def spectra_table(runs: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    """Measured against predicted spread of the Jacobian spectrum, one row per run and
    recorded depth ``jacobian_depth`` (``l``, the number of ``D W`` factors).

    Runs qualify with ``jacobian_sv2`` rows at step 0, an init whose std is known, zero-mean
    biases (``bias_variance``) and the layer-0 activation statistics, from which
    ``q_1 = sigma_w^2 E[h_0^2] + sigma_b^2`` starts the length map.
    """
    if runs.empty or layers.empty:
        return pd.DataFrame(columns=list(SPECTRA_COLUMNS))
    step0 = layers[layers["step"] == 0]
    quantity = step0["quantity"].astype(str)
    spectra = step0[quantity.str.startswith(f"{SV2}.")]
    if spectra.empty:
        return pd.DataFrame(columns=list(SPECTRA_COLUMNS))
    wide = (spectra.assign(statistic=quantity[spectra.index].str.slice(len(SV2) + 1))
            .pivot_table(index=["run", "layer"], columns="statistic", values="value", observed=True))
    first = step0[(step0["layer"] == 0) & quantity.isin(["act_mean", "act_std"])]
    moments = first.pivot_table(index="run", columns="quantity", values="value", observed=True)
    rows = []
    for run in runs.itertuples(index=False):
        name = str(run.run)
        if name not in wide.index.get_level_values(0) or name not in moments.index:
            continue
        sigma_b2 = bias_variance(str(run.init), run.width, getattr(run, "bias", None), getattr(run, "bias_std", None))
        if sigma_b2 is None:
            continue
        slope = None if is_missing(getattr(run, "slope", None)) else float(run.slope)
        sigma_w2 = weight_variance(str(run.init), run.width, run.gain, getattr(run, "init_std", None))
        second = float(moments.loc[name, "act_mean"] ** 2 + moments.loc[name, "act_std"] ** 2)
        part = wide.loc[name].sort_index()
        depths = part.index.to_numpy(dtype=int)
        qs = preactivation_variances(str(run.activation), sigma_w2, sigma_w2 * second + sigma_b2, int(depths.max()),
                                     sigma_b2, slope)
        ensemble = weight_ensemble(str(run.init))
        predicted = normalized_variance(str(run.activation), ensemble, qs, slope)
        means = mean_sv2(str(run.activation), sigma_w2, qs, slope)
        for depth, stats in part.iterrows():
            mean = float(stats["mean"])
            rows.append({
                "run": name, "study": str(run.study), "cell": str(run.cell), "seed": run.seed,
                "activation": str(run.activation), "init": str(run.init), "ensemble": ensemble, "gain": run.gain,
                "width": run.width, "depth": run.depth, "jacobian_depth": int(depth), "sv2_mean": mean,
                "sv2_var": float(stats["var"]), "sv2_max": float(stats["max"]),
                "normalized_variance": float(stats["normalized_var"]),
                "predicted_normalized_variance": float(predicted[depth - 1]), "predicted_mean": float(means[depth - 1]),
                "q_first": float(qs[0]), "q_last": float(qs[depth - 1]),
            })
    return pd.DataFrame(rows, columns=list(SPECTRA_COLUMNS))

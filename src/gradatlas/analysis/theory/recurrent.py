"""Vanilla RNNs in mean field over time: the per-step factor of the hidden-state gradient."""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
from scipy import optimize

from gradatlas.analysis.theory.gaussian import (
    Q_MAX, Q_MIN, ActivationLike, activation_functions, gaussian_expectation)
from gradatlas.analysis.theory.variances import rnn_variances

# Gains between which ``crossing_gain`` looks for the factor's crossing of 1.
GAIN_BRACKET = (0.5, 3.0)


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


def rnn_predicted_factor(activation: ActivationLike, sigma_u2: float, input_var: float, sigma_b2: float,
                         length: int, slope: Optional[float] = None) -> float:
    """The per-step factor a log-linear fit of ||dLoss/dh_t|| over t = 1..T sees: the geometric
    mean of ``rnn_time_factors``' factors over t = 2..T (the steps from t back to t - 1), NaN
    for a sequence of one step."""
    if length < 2:
        return math.nan
    _, factors = rnn_time_factors(activation, sigma_u2, input_var, sigma_b2, length, slope)
    return float(np.exp(np.mean(np.log(factors[1:]))))


def crossing_gain(factor_of_gain: Callable[[float], float], low: float = GAIN_BRACKET[0],
                  high: float = GAIN_BRACKET[1]) -> float:
    """The gain at which ``factor_of_gain`` crosses 1 (``scipy.optimize.brentq`` on its log),
    NaN when it does not change sign on [low, high].

    With orthogonal ``W_rec`` scaled by g (largest singular value g) the predicted factor is
    below g (the drive lowers phi'), so the crossing lies above g = 1.
    """
    def log_factor(gain: float) -> float:
        return math.log(factor_of_gain(gain))

    a, b = log_factor(low), log_factor(high)
    if not (math.isfinite(a) and math.isfinite(b)) or a * b > 0:
        return math.nan
    return float(optimize.brentq(log_factor, low, high, xtol=1e-6))


def adding_input_power(length: int) -> float:
    """E ||x_t||^2 of the adding problem (``data.adding_problem``), averaged over t: values
    uniform on [0, 1) (E v^2 = 1/3) and two markers of 1 per sequence (2 / length)."""
    return 1.0 / 3.0 + 2.0 / float(length)


# Data sets whose mean squared input per step the RNN theory knows: name -> f(length).
INPUT_POWER: dict[str, Callable[[int], float]] = {"adding": adding_input_power}
# Input width of those data sets (channels per step).
INPUT_DIM: dict[str, int] = {"adding": 2}


def rnn_factor_of_gain(activation: str, init: str, width: float, data: str, length: int,
                       init_std: float = 0.01, bias: Optional[float] = None) -> Callable[[float], float]:
    """The predicted per-step factor (``rnn_predicted_factor``) of a one-layer vanilla RNN on
    ``data`` (one of ``INPUT_POWER``) as a function of the init's gain: the gain scales both
    the recurrent and the input weights (``run.recurrent.Cell``), so the drive grows with it."""
    def factor(gain: float) -> float:
        variances = rnn_variances(init, width, INPUT_DIM[data], gain, init_std, bias)
        if variances is None:
            return math.nan
        sigma_u2, entry_w, sigma_b2 = variances
        return rnn_predicted_factor(activation, sigma_u2, entry_w * INPUT_POWER[data](length), sigma_b2, length)

    return factor

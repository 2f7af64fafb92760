"""Vanilla RNNs in mean field over time: the per-step factor of the hidden-state gradient."""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from gradatlas.analysis.theory.gaussian import (
    Q_MAX, Q_MIN, ActivationLike, activation_functions, gaussian_expectation)


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

"""The variances sigma_w^2, sigma_b^2 (and an RNN cell's) that an initializer gives at init."""

from __future__ import annotations

import math
from typing import Optional

from gradatlas.run import inits


def is_missing(value) -> bool:
    """Whether a run's factor value is unset (None or a float NaN, as pandas reads a gap)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def weight_variance(init: str, width: float, gain: float = 1.0, init_std: float = 0.01) -> float:
    """sigma_w^2 = fan_in * std^2 of a width x width hidden weight drawn by ``init``."""
    fan = int(width)
    std = inits.weight_std(init, fan, fan, 1.0 if is_missing(gain) else float(gain),
                           0.01 if is_missing(init_std) else float(init_std))
    return fan * std**2


def bias_variance(init: str, width: float, bias: Optional[float],
                  bias_std: Optional[float] = None) -> Optional[float]:
    """sigma_b^2 of the hidden biases, or None when they are not zero-mean random (a constant
    nonzero ``bias``), which mean-field theory with centred biases does not describe.

    A set ``bias_std`` gives bias_std^2 (biases N(0, bias_std^2)); a set ``bias`` of 0 and every
    non-default init give zero biases; PyTorch's default draws U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    variance 1 / (3 fan_in).
    """
    if not is_missing(bias_std):
        return float(bias_std) ** 2
    if not is_missing(bias):
        return 0.0 if float(bias) == 0.0 else None
    return 1.0 / (3.0 * float(width)) if init == "default" else 0.0



def rnn_variances(init: str, width: float, input_dim: int, gain: float, init_std: float,
                  bias: Optional[float]) -> Optional[tuple[float, float, float]]:
    """(sigma_u^2, per-entry variance of W, sigma_b^2) of a vanilla RNN cell (``run.recurrent.Cell``),
    or None for a constant nonzero bias.

    ``default``: every weight and both biases U(-1/sqrt(H), 1/sqrt(H)) (variance 1/(3H)), the
    weights times ``gain``; otherwise the initializer's std for each matrix and zero biases
    (a set ``bias`` goes to bias_ih, bias_hh is 0).
    """
    hidden = int(width)
    gain = 1.0 if is_missing(gain) else float(gain)
    init_std = 0.01 if is_missing(init_std) else float(init_std)
    if init == "default":
        entry_u = entry_w = gain**2 / (3.0 * hidden)
        sigma_b2 = 2.0 / (3.0 * hidden)
    else:
        entry_u = inits.weight_std(init, hidden, hidden, gain, init_std) ** 2
        entry_w = inits.weight_std(init, input_dim, hidden, gain, init_std) ** 2
        sigma_b2 = 0.0
    if not is_missing(bias):
        if float(bias) != 0.0:
            return None
        sigma_b2 = 0.0
    return hidden * entry_u, entry_w, sigma_b2

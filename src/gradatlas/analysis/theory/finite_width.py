"""Finite-width fluctuations of the backward gain in He-initialized ReLU MLPs (Hanin 2018;
Hanin and Rolnick 2018; Hanin and Nica 2019).

The squared backward gain of an example from the output down to hidden layer l,
``r = ||dLoss/dz_l||^2 / ||dLoss/dout||^2``, is a product of one factor per hidden layer k >= l:
the gradient at layer k's pre-activation is ``D_k W_{k+1}^T g`` (D_k the 0/1 ReLU mask,
W_{k+1} with entries of variance 2 / n_k, He's), and for a Gaussian W and a mask independent of
the direction of g,

    ||D_k W^T g||^2 / ||g||^2 = (2 / n_k) chi^2_{K_k},   K_k ~ Binomial(n_k, 1/2),

independently over layers. So E[r] = 1 at every depth (He), while ln r is a sum of
independent terms whose variances add: Var[ln r] = sum_k v(n_k), with
v(n) = 5 / n + O(1 / n^2) (the factor's relative variance is (2 / n)^2 (n + n / 4) = 5 / n).
The fluctuation is set by beta = sum_k 1 / n_k, not by depth: Var[ln r] ~ 5 beta.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Optional

import numpy as np
from scipy import special, stats

# Var[ln r] / beta as the widths grow: the relative variance of one layer's factor times n.
LOG_VARIANCE_PER_BETA = 5.0


def beta(widths: Iterable[float]) -> float:
    """sum_l 1 / n_l over the hidden widths."""
    return float(sum(1.0 / float(n) for n in widths))


def mlp_widths(depth: int, width: int, width_alt: Optional[float] = None) -> list[int]:
    """The hidden widths of an MLP from its grid factors: ``width``, alternating with
    ``width_alt`` on layers 1, 3, ... where that is set (``run.config.hidden_widths``)."""
    alt = width if width_alt is None or not np.isfinite(width_alt) else int(width_alt)
    return [alt if layer % 2 else int(width) for layer in range(int(depth))]


@lru_cache(maxsize=1024)
def layer_log_moments(width: int) -> tuple[float, float]:
    """Mean and variance of ln((2 / n) chi^2_K), K ~ Binomial(n, 1/2) given K > 0 (the mask
    that kills the whole layer has probability 2^-n).

    For K = k, ln chi^2_k has mean psi(k/2) + ln 2 and variance psi'(k/2); the law of total
    variance adds the spread of the mean over K.
    """
    k = np.arange(1, width + 1)
    weights = stats.binom.pmf(k, width, 0.5)
    weights = weights / weights.sum()
    means = special.digamma(k / 2) + np.log(2.0) + np.log(2.0 / width)
    mean = float(np.sum(weights * means))
    variance = float(np.sum(weights * (special.polygamma(1, k / 2) + (means - mean) ** 2)))
    return mean, variance


def log_gain_moments(widths: Iterable[int]) -> tuple[float, float]:
    """Mean and variance of ln r through hidden layers of these widths (sums over layers)."""
    moments = [layer_log_moments(int(n)) for n in widths]
    return float(sum(m for m, _ in moments)), float(sum(v for _, v in moments))

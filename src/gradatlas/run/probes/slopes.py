"""Where an activation's slope is small: the largest |phi'| of each unit over many inputs, and
the units that are dead (the slope small for every input).

A unit is dead when |phi'(z)| < DEAD_SLOPE_SHARE * sup|phi'| for every example of the probe
set. 0.05 lies between the two slopes the metric must tell apart, a factor 5 from each: a
leaky ReLU unit wholly in its negative regime (slope 0.01, passing 1 % of the gradient) is
dead, a PReLU unit at its initial slope 0.25 is not. A sigmoid unit is dead beyond
|z| ~ 4.4 for every example, a tanh unit beyond |z| ~ 2.2, an ELU unit below z ~ -3.
"""

from __future__ import annotations

from typing import Optional

import torch

from gradatlas.run.activations import (
    ELU,
    SELU,
    Activation,
    LeakyReLU,
    Linear,
    PReLU,
    ReLU,
    Sigmoid,
    Step,
    Tanh,
)
from gradatlas.run.models import LayerTrace

DEAD_SLOPE_SHARE = 0.05

# Activations whose derivative is never negative: there saturation needs no abs(). Exact
# types only, so that a subclass with another derivative gets the abs().
NONNEGATIVE_SLOPE = frozenset({Step, Linear, Sigmoid, Tanh, ReLU, ELU, SELU})
# Activations whose derivative is monotone in z (one jump or one monotone piece): over a set of
# z its largest |phi'| is at the smallest or the largest z. SELU is not (its slope drops at 0).
_MONOTONE_SLOPE = frozenset({Step, Linear, ReLU, LeakyReLU, PReLU, ELU})
# Activations whose |phi'| is even and decreasing in |z|: the largest is at the smallest |z|.
_PEAKED_AT_ZERO = frozenset({Sigmoid, Tanh})


def largest_slope(activation: Activation, z: torch.Tensor) -> torch.Tensor:
    """Per column of ``z`` (examples x units), max over the rows of |phi'(z)|.

    The same value as ``activation.derivative(z).abs().amax(dim=0)``; where the shape of phi'
    allows (exact types, as for ``NONNEGATIVE_SLOPE``) the derivative is taken at one or two
    values per unit instead of at every example, which makes the probe set's dead units cheap.
    """
    kind = type(activation)
    if kind in _MONOTONE_SLOPE:
        # amin and amax, not aminmax: on CPU aminmax(dim=0) is ~10x slower than both together.
        ends = activation.derivative(torch.stack([z.amin(dim=0), z.amax(dim=0)]))
        return (ends if kind in NONNEGATIVE_SLOPE else ends.abs()).amax(dim=0)
    if kind in _PEAKED_AT_ZERO:
        return activation.derivative(z.abs().amin(dim=0))
    slope = activation.derivative(z)
    if kind in NONNEGATIVE_SLOPE:
        return slope.amax(dim=0)
    return torch.maximum(slope.amax(dim=0), -slope.amin(dim=0))


def dead_units(layer: LayerTrace, share: float = DEAD_SLOPE_SHARE) -> Optional[torch.Tensor]:
    """Per unit of ``layer`` (its activation's last dim), whether |phi'(z)| < share * sup|phi'|
    for every example (and time step) of the traced forward pass; None without an activation.

    The derivative comes from the activation's own ``derivative``, so every activation of
    ``gradatlas.run.activations`` is covered; for gated cells the units are their sigmoid gates.
    """
    if layer.act_input is None or layer.activation is None:
        return None
    z = layer.act_input.detach()
    return largest_slope(layer.activation, z.reshape(-1, z.shape[-1])) < share * layer.activation.max_slope

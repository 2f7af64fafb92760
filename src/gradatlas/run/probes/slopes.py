"""Where an activation's slope is small: the largest |phi'| of each unit over many inputs, and
the units that are dead (the slope small for every input).

A unit is dead when it passes (almost) no gradient on the probe set: |phi'(z)| < its
activation's dead slope (``dead_slope``) for every example. The rule knows the activation:

- a rectifier with a linear negative side (ReLU, leaky ReLU, PReLU) is dead when its slope
  is below DEAD_SLOPE_ABSOLUTE = 1e-3 for every example, whatever sup|phi'| is: the unit then
  passes less than a thousandth of the gradient. A ReLU unit's slope is 0 or 1, so it is dead
  exactly when wholly negative; a leaky ReLU unit (fixed slope 0.01) always passes 1 % of
  the gradient and is never dead; a PReLU unit is dead when wholly negative with a learned
  slope |a| < 1e-3 (a unit at |a| = 0.04 still passes 4 % and is alive);
- every other activation (smooth ones, the step) is dead when |phi'(z)| < DEAD_SLOPE_SHARE *
  sup|phi'| for every example: a sigmoid unit beyond |z| ~ 4.4 for every example, a tanh
  unit beyond |z| ~ 2.2, an ELU unit below z ~ -3. Their slope never reaches exactly 0, so
  the threshold is relative to what the unit could pass at best.
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
    StepSTE,
    Tanh,
)
from gradatlas.run.models import LayerTrace

DEAD_SLOPE_SHARE = 0.05
DEAD_SLOPE_ABSOLUTE = 1e-3
# Activations whose unit is dead below an absolute slope (exact types, as below).
_ABSOLUTE_DEAD_SLOPE: dict[type, float] = {ReLU: DEAD_SLOPE_ABSOLUTE, LeakyReLU: DEAD_SLOPE_ABSOLUTE,
                                           PReLU: DEAD_SLOPE_ABSOLUTE}

# Activations whose derivative is never negative: there saturation needs no abs(). Exact
# types only, so that a subclass with another derivative gets the abs().
NONNEGATIVE_SLOPE = frozenset({Step, StepSTE, Linear, Sigmoid, Tanh, ReLU, ELU, SELU})
# Activations whose derivative is monotone in z (one jump or one monotone piece): over a set of
# z its largest |phi'| is at the smallest or the largest z. SELU is not (its slope drops at 0).
_MONOTONE_SLOPE = frozenset({Step, Linear, ReLU, LeakyReLU, PReLU, ELU})
# Activations whose |phi'| is even and non-increasing in |z|: the largest is at the smallest |z|.
_PEAKED_AT_ZERO = frozenset({Sigmoid, Tanh, StepSTE})


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


def dead_slope(activation: Activation, share: float = DEAD_SLOPE_SHARE) -> float:
    """The slope below which a unit of ``activation`` passes (almost) no gradient: the absolute
    DEAD_SLOPE_ABSOLUTE for the rectifiers with a linear negative side, else ``share`` times
    sup|phi'| (see the module's docstring)."""
    absolute = _ABSOLUTE_DEAD_SLOPE.get(type(activation))
    return absolute if absolute is not None else share * activation.max_slope


def dead_units(layer: LayerTrace, share: float = DEAD_SLOPE_SHARE) -> Optional[torch.Tensor]:
    """Per unit of ``layer`` (its activation's last dim), whether |phi'(z)| < ``dead_slope``
    for every example (and time step) of the traced forward pass; None without an activation.

    The derivative comes from the activation's own ``derivative``, so every activation of
    ``gradatlas.run.activations`` is covered; for gated cells the units are their sigmoid gates.
    """
    if layer.act_input is None or layer.activation is None:
        return None
    z = layer.act_input.detach()
    return largest_slope(layer.activation, z.reshape(-1, z.shape[-1])) < dead_slope(layer.activation, share)

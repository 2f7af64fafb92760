"""Hidden-layer activations, each with its closed-form derivative.

Every activation is an ``nn.Module`` with a ``derivative(z)`` method: the probes use it to
measure saturation and the mean-field theory uses it for chi_1, and the tests check it
against autograd. ``max_slope`` is the supremum of ``|phi'|``; saturation is measured
relative to it so that one threshold serves every activation.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from gradatlas.run import stacking

# SELU constants from Klambauer et al. (2017), as used by torch.nn.functional.selu.
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


class Activation(nn.Module):
    """Base class: a pointwise nonlinearity phi with its derivative phi'."""

    max_slope: float = 1.0

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        """Return phi'(z) elementwise (the a.e. derivative where phi has kinks)."""
        raise NotImplementedError


class Step(Activation):
    """Binary threshold 1[z > 0]: zero derivative almost everywhere.

    The ``0 * z`` term keeps the output in the autograd graph, so backpropagation runs and
    delivers the true (zero) gradient instead of failing: that is the point of claim 12.
    """

    # A step unit has no slope to lose; 1 is the slope it would need to pass a gradient.
    max_slope = 1.0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z > 0).to(z.dtype) + 0.0 * z

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(z)


# The straight-through estimator's window: its backward passes the gradient unchanged where
# |z| < STE_WINDOW and blocks it elsewhere (the hard-tanh surrogate of Bengio et al. 2013,
# Hubara et al. 2016), so a unit far from its threshold gets no update.
STE_WINDOW = 1.0


class StepSTE(Activation):
    """The binary step trained with a straight-through estimator: the forward pass is exactly
    ``Step``'s, the backward pass uses the surrogate derivative 1[|z| < STE_WINDOW] (that of
    hard-tanh) in place of the true zero. ``derivative`` is the surrogate, what backpropagation
    multiplies by; the contrast with ``Step`` is what the true zero gradient costs."""

    max_slope = 1.0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # surrogate - surrogate.detach() is exactly 0 (NaN where z is, as for Step) and carries
        # hard-tanh's gradient, which is 1 for -1 < z < 1 and 0 elsewhere.
        surrogate = nn.functional.hardtanh(z, -STE_WINDOW, STE_WINDOW)
        return (z > 0).to(z.dtype) + (surrogate - surrogate.detach())

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        return (z.abs() < STE_WINDOW).to(z.dtype)


class Linear(Activation):
    """Identity: a deep linear network."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(z)


class Sigmoid(Activation):
    """Logistic sigmoid; its derivative is at most 1/4."""

    max_slope = 0.25

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(z)

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(z)
        return s * (1.0 - s)


class Tanh(Activation):
    """Hyperbolic tangent; zero-centred with tanh'(0) = 1."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z)

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        return 1.0 - torch.tanh(z) ** 2


class ReLU(Activation):
    """Rectified linear unit."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.relu(z)

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        return (z > 0).to(z.dtype)


class LeakyReLU(Activation):
    """ReLU with a fixed slope on the negative side."""

    def __init__(self, slope: float = 0.01) -> None:
        super().__init__()
        self.slope = float(slope)
        self.max_slope = max(1.0, abs(self.slope))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.leaky_relu(z, self.slope)

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, self.slope))


class PReLU(Activation):
    """Leaky ReLU whose negative slope is one learned parameter per layer (in a stack, one
    per member and layer)."""

    def __init__(self, slope: float = 0.25) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([float(slope)]))

    @property
    def slope(self) -> float:
        """The current learned slope."""
        return float(self.weight.detach())

    @property  # type: ignore[override]
    def max_slope(self) -> float:
        """sup |phi'| = max(1, |slope|), with the slope as learned so far."""
        return max(1.0, abs(self.slope))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return stacking.prelu(z, self.weight)

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        slope = self.weight.detach().to(z.dtype)
        return torch.where(z > 0, torch.ones_like(z), slope.expand_as(z))


class ELU(Activation):
    """Exponential linear unit with alpha = 1."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.elu(z)

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        return torch.where(z > 0, torch.ones_like(z), torch.exp(torch.clamp(z, max=0.0)))


class SELU(Activation):
    """Scaled ELU, self-normalizing with LeCun-normal weights."""

    max_slope = SELU_SCALE * SELU_ALPHA

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.selu(z)

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        neg = SELU_SCALE * SELU_ALPHA * torch.exp(torch.clamp(z, max=0.0))
        return torch.where(z > 0, torch.full_like(z, SELU_SCALE), neg)


class SiLU(Activation):
    """Swish / SiLU, z * sigmoid(z)."""

    max_slope = 1.0998393201288669  # attained at z ~ 2.3994 (rounding down would undercut it)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(z)

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(z)
        return s * (1.0 + z * (1.0 - s))


class GELU(Activation):
    """Gaussian error linear unit (exact, erf-based)."""

    # Attained at z = sqrt(2): Phi(sqrt 2) + sqrt(2) phi(sqrt 2) = (1 + erf(1)) / 2 + 1 / (e sqrt(pi)).
    max_slope = 0.5 * (1.0 + math.erf(1.0)) + math.exp(-1.0) / math.sqrt(math.pi)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(z)

    def derivative(self, z: torch.Tensor) -> torch.Tensor:
        cdf = 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
        pdf = torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        return cdf + z * pdf


ACTIVATIONS: dict[str, Callable[..., Activation]] = {
    "step": Step,
    "step_ste": StepSTE,
    "linear": Linear,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "prelu": PReLU,
    "elu": ELU,
    "selu": SELU,
    "silu": SiLU,
    "swish": SiLU,
    "gelu": GELU,
}

# Activations whose constructor takes the negative-side slope.
SLOPED = frozenset({"leaky_relu", "prelu"})


def make_activation(name: str, slope: float | None = None) -> Activation:
    """Build the activation called ``name``.

    Args:
        name: a key of ``ACTIVATIONS``.
        slope: negative-side slope for ``leaky_relu`` (fixed) and ``prelu`` (initial value);
            ignored by the others. ``None`` keeps the activation's default.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    if name in SLOPED and slope is not None:
        return ACTIVATIONS[name](slope)
    return ACTIVATIONS[name]()

"""Weight initializers, each scaled by a gain multiplier so the weight variance can be swept.

An initializer fills a 2-D weight ``(fan_out, fan_in)`` in place. ``weight_std`` gives the
standard deviation each one targets, so tests and the mean-field theory share one formula.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

Initializer = Callable[[torch.Tensor, float, float], None]


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    fan_out, fan_in = weight.shape
    return fan_in, fan_out


def weight_std(name: str, fan_in: int, fan_out: int, gain: float = 1.0, std: float = 0.01) -> float:
    """Standard deviation of the weights that initializer ``name`` draws.

    Args:
        name: an initializer name (a key of ``INITIALIZERS``).
        fan_in: number of inputs of the layer.
        fan_out: number of outputs of the layer.
        gain: the gain multiplier.
        std: the fixed standard deviation used by ``normal``.
    """
    check_name(name)
    if name == "default":
        # PyTorch's nn.Linear: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        return gain / math.sqrt(3.0 * fan_in)
    if name == "normal":
        return gain * std
    if name == "lecun_normal":
        return gain / math.sqrt(fan_in)
    if name in ("xavier_normal", "xavier_uniform"):
        return gain * math.sqrt(2.0 / (fan_in + fan_out))
    if name in ("he_normal", "he_uniform"):
        return gain * math.sqrt(2.0 / fan_in)
    # orthogonal: rows/columns have unit norm, so entries have variance 1/max(fan_in, fan_out).
    return gain / math.sqrt(max(fan_in, fan_out))


def _normal(name: str) -> Initializer:
    def init(weight: torch.Tensor, gain: float, std: float) -> None:
        fan_in, fan_out = _fans(weight)
        with torch.no_grad():
            weight.normal_(0.0, weight_std(name, fan_in, fan_out, gain, std))

    return init


def _uniform(name: str) -> Initializer:
    def init(weight: torch.Tensor, gain: float, std: float) -> None:
        fan_in, fan_out = _fans(weight)
        bound = math.sqrt(3.0) * weight_std(name, fan_in, fan_out, gain, std)
        with torch.no_grad():
            weight.uniform_(-bound, bound)

    return init


def _orthogonal(weight: torch.Tensor, gain: float, std: float) -> None:
    nn.init.orthogonal_(weight, gain=gain)


INITIALIZERS: dict[str, Initializer] = {
    "default": _uniform("default"),
    "normal": _normal("normal"),
    "lecun_normal": _normal("lecun_normal"),
    "xavier_normal": _normal("xavier_normal"),
    "xavier_uniform": _uniform("xavier_uniform"),
    "he_normal": _normal("he_normal"),
    "he_uniform": _uniform("he_uniform"),
    "orthogonal": _orthogonal,
}


def check_name(name: str) -> None:
    """Raise ``ValueError`` naming the known initializers if ``name`` is not one."""
    if name not in INITIALIZERS:
        raise ValueError(f"unknown init {name!r}; known: {', '.join(INITIALIZERS)}")


def initialize(weight: torch.Tensor, name: str, gain: float = 1.0, std: float = 0.01, chunks: int = 1) -> None:
    """Fill ``weight`` in place with initializer ``name``.

    Args:
        weight: a 2-D weight of shape ``(fan_out, fan_in)``.
        name: initializer name.
        gain: multiplier of the standard deviation.
        std: the fixed standard deviation of ``normal``.
        chunks: number of stacked blocks along dim 0 (4 for LSTM gates, 3 for GRU), each
            initialized as its own matrix so that fan_out is that of one gate.
    """
    check_name(name)
    for block in weight.chunk(chunks, dim=0):
        INITIALIZERS[name](block, gain, std)

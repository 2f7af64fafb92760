"""Feed-forward architectures: the plain MLP and the pre-activation residual MLP.

Conventions (layer 0 is nearest the input; the readout is the last layer, named ``head``):

- ``mlp``: ``z_l = W_l h_{l-1} + b_l``, ``h_l = phi(norm(z_l))``.
- ``resmlp``: a linear stem ``h_0 = z_0 = W_0 x``, then pre-activation residual blocks
  ``z_l = W_l phi(norm(h_{l-1}))``, ``h_l = h_{l-1} + z_l``; the head reads
  ``phi(norm(h_L))``.

Inputs are ``(B, ...)``, or ``(E, B, ...)`` in a stack (``gradatlas.run.stacking``); a
sequence is flattened into one input vector.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn

from gradatlas.run.activations import make_activation
from gradatlas.run.config import ModelConfig, hidden_widths
from gradatlas.run.data import Dataset
from gradatlas.run.inits import initialize
from gradatlas.run.stacking import BatchNorm, LayerNorm, Linear
from gradatlas.run.trace import LayerTrace, Trace

NORMS: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda width: nn.Identity(),
    "batch": BatchNorm,
    "layer": LayerNorm,
}


def make_norm(name: str, width: int) -> nn.Module:
    """Normalization layer by name: ``none``, ``batch`` or ``layer``."""
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; known: {', '.join(NORMS)}")
    return NORMS[name](width)


def init_linear(layer: nn.Linear, cfg: ModelConfig) -> None:
    """Initialize a linear layer as ``cfg`` says (``default``: PyTorch's, scaled by the gain;
    ``bias_std``: biases N(0, bias_std^2), drawn after the weight)."""
    if cfg.init == "default":
        if cfg.init_gain != 1.0:
            with torch.no_grad():
                layer.weight.mul_(cfg.init_gain)
    else:
        initialize(layer.weight, cfg.init, cfg.init_gain, cfg.init_std)
        nn.init.zeros_(layer.bias)
    if cfg.bias_init is not None:
        nn.init.constant_(layer.bias, cfg.bias_init)
    if cfg.bias_std is not None:
        with torch.no_grad():
            layer.bias.normal_(0.0, cfg.bias_std)


def input_dim(data: Dataset) -> int:
    """The length of one flattened input (all time steps of a sequence)."""
    return data.input_dim * (data.x_train.shape[1] if data.sequence else 1)


class MLP(nn.Module):
    """Deep fully connected network: Linear -> norm -> activation, ``depth`` times, then a head
    (hidden widths: ``config.hidden_widths``)."""

    def __init__(self, data: Dataset, cfg: ModelConfig) -> None:
        super().__init__()
        dims = [input_dim(data)] + hidden_widths(cfg)
        self.linears = nn.ModuleList(Linear(dims[i], dims[i + 1]) for i in range(cfg.depth))
        self.norms = nn.ModuleList(make_norm(cfg.norm, dims[i + 1]) for i in range(cfg.depth))
        self.acts = nn.ModuleList(make_activation(cfg.activation, cfg.slope) for _ in range(cfg.depth))
        self.head = Linear(dims[-1], data.output_dim)
        for layer in [*self.linears, self.head]:
            init_linear(layer, cfg)

    def forward(self, x: torch.Tensor, trace: Optional[Trace] = None) -> torch.Tensor:
        h = x.flatten(len(self.head.member_shape) + 1)
        if trace is not None:
            trace.inputs = h
        for i, (linear, norm, act) in enumerate(zip(self.linears, self.norms, self.acts)):
            z = linear(h)
            u = norm(z)
            h = act(u)
            if trace is not None:
                trace.add(LayerTrace(f"hidden.{i}", [linear.weight], [z], u, h, act))
        out = self.head(h)
        if trace is not None:
            trace.add(LayerTrace("head", [self.head.weight], [out]))
        return out


class ResMLP(nn.Module):
    """Residual MLP with pre-activation blocks (He et al. 2016, identity mappings)."""

    def __init__(self, data: Dataset, cfg: ModelConfig) -> None:
        super().__init__()
        blocks = cfg.depth - 1
        self.stem = Linear(input_dim(data), cfg.width)
        self.linears = nn.ModuleList(Linear(cfg.width, cfg.width) for _ in range(blocks))
        self.norms = nn.ModuleList(make_norm(cfg.norm, cfg.width) for _ in range(blocks + 1))
        self.acts = nn.ModuleList(make_activation(cfg.activation, cfg.slope) for _ in range(blocks + 1))
        self.head = Linear(cfg.width, data.output_dim)
        for layer in [self.stem, *self.linears, self.head]:
            init_linear(layer, cfg)

    def forward(self, x: torch.Tensor, trace: Optional[Trace] = None) -> torch.Tensor:
        flat = x.flatten(len(self.head.member_shape) + 1)
        h = self.stem(flat)
        if trace is not None:
            trace.inputs = flat
            trace.add(LayerTrace("stem", [self.stem.weight], [h]))
        for i, linear in enumerate(self.linears):
            u = self.norms[i](h)
            a = self.acts[i](u)
            z = linear(a)
            h = h + z
            if trace is not None:
                trace.add(LayerTrace(f"block.{i + 1}", [linear.weight], [z], u, a, self.acts[i]))
        u = self.norms[-1](h)
        out = self.head(self.acts[-1](u))
        if trace is not None:
            trace.add(LayerTrace("head", [self.head.weight], [out]))
        return out

"""Architectures that expose their internals to the probes.

Each model's ``forward(x, trace=None)`` behaves like an ordinary module; given a ``Trace``
it also records, per layer, the tensors the probes need (and asks autograd to keep their
gradients). Recurrent cells are written out by hand, with PyTorch's gate layout, because
``nn.LSTM`` hides the per-step hidden states and gates whose gradients we measure.

Conventions (layer 0 is nearest the input; the readout is the last layer, named ``head``):

- ``mlp``: ``z_l = W_l h_{l-1} + b_l``, ``h_l = phi(norm(z_l))``.
- ``resmlp``: a linear stem ``h_0 = z_0 = W_0 x``, then pre-activation residual blocks
  ``z_l = W_l phi(norm(h_{l-1}))``, ``h_l = h_{l-1} + z_l``; the head reads
  ``phi(norm(h_L))``.
- ``rnn``/``gru``/``lstm``: ``depth`` stacked layers; the head reads the top layer's last
  state (or its last K states for the copy task).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from gradatlas.activations import Activation, Sigmoid, make_activation
from gradatlas.config import ModelConfig
from gradatlas.data import Dataset
from gradatlas.inits import initialize


@dataclass
class LayerTrace:
    """What one layer exposes to the probes during a traced forward pass.

    Attributes:
        name: readable layer name.
        weights: the layer's weight matrices (their gradients and norms are measured).
        preacts: tensors whose gradient is the backpropagated signal of the layer
            (``z_l``, or the hidden states ``h_t`` of a recurrent layer); they retain grad.
        act_input: what the activation was applied to (for saturation), or None.
        act_output: the activation's output (for mean, std, dead units), or None.
        activation: the module whose ``derivative`` defines saturation, or None.
    """

    name: str
    weights: list[nn.Parameter]
    preacts: list[torch.Tensor]
    act_input: Optional[torch.Tensor] = None
    act_output: Optional[torch.Tensor] = None
    activation: Optional[Activation] = None


@dataclass
class Trace:
    """Collects ``LayerTrace``s and, for recurrent models, per-step hidden states and gates."""

    layers: list[LayerTrace] = field(default_factory=list)
    hidden: list[torch.Tensor] = field(default_factory=list)
    gates: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    def add(self, layer: LayerTrace) -> None:
        """Record a layer and keep the gradients of its pre-activations."""
        for tensor in layer.preacts:
            if tensor.requires_grad:
                tensor.retain_grad()
        self.layers.append(layer)


def make_norm(name: str, width: int) -> nn.Module:
    """Normalization layer by name: ``none``, ``batch`` or ``layer``."""
    if name == "none":
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm1d(width)
    if name == "layer":
        return nn.LayerNorm(width)
    raise ValueError(f"unknown norm {name!r}; known: none, batch, layer")


def _init_linear(layer: nn.Linear, cfg: ModelConfig) -> None:
    if cfg.init == "default":
        if cfg.init_gain != 1.0:
            with torch.no_grad():
                layer.weight.mul_(cfg.init_gain)
    else:
        initialize(layer.weight, cfg.init, cfg.init_gain, cfg.init_std)
        nn.init.zeros_(layer.bias)
    if cfg.bias_init is not None:
        nn.init.constant_(layer.bias, cfg.bias_init)


class MLP(nn.Module):
    """Deep fully connected network: Linear -> norm -> activation, ``depth`` times, then a head."""

    def __init__(self, data: Dataset, cfg: ModelConfig) -> None:
        super().__init__()
        in_dim = data.input_dim * (data.x_train.shape[1] if data.sequence else 1)
        dims = [in_dim] + [cfg.width] * cfg.depth
        self.linears = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(cfg.depth))
        self.norms = nn.ModuleList(make_norm(cfg.norm, cfg.width) for _ in range(cfg.depth))
        self.acts = nn.ModuleList(make_activation(cfg.activation, cfg.slope) for _ in range(cfg.depth))
        self.head = nn.Linear(cfg.width, data.output_dim)
        for layer in [*self.linears, self.head]:
            _init_linear(layer, cfg)

    def forward(self, x: torch.Tensor, trace: Optional[Trace] = None) -> torch.Tensor:
        h = x.flatten(1)
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
        in_dim = data.input_dim * (data.x_train.shape[1] if data.sequence else 1)
        blocks = cfg.depth - 1
        self.stem = nn.Linear(in_dim, cfg.width)
        self.linears = nn.ModuleList(nn.Linear(cfg.width, cfg.width) for _ in range(blocks))
        self.norms = nn.ModuleList(make_norm(cfg.norm, cfg.width) for _ in range(blocks + 1))
        self.acts = nn.ModuleList(make_activation(cfg.activation, cfg.slope) for _ in range(blocks + 1))
        self.head = nn.Linear(cfg.width, data.output_dim)
        for layer in [self.stem, *self.linears, self.head]:
            _init_linear(layer, cfg)

    def forward(self, x: torch.Tensor, trace: Optional[Trace] = None) -> torch.Tensor:
        h = self.stem(x.flatten(1))
        if trace is not None:
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


class Cell(nn.Module):
    """A recurrent cell with PyTorch's parameter layout (``gates`` stacked blocks)."""

    gates = 1
    gate_names: tuple[str, ...] = ()

    def __init__(self, in_dim: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.weight_ih = nn.Parameter(torch.empty(self.gates * width, in_dim))
        self.weight_hh = nn.Parameter(torch.empty(self.gates * width, width))
        self.bias_ih = nn.Parameter(torch.empty(self.gates * width))
        self.bias_hh = nn.Parameter(torch.empty(self.gates * width))

    def reset(self, cfg: ModelConfig) -> None:
        """Initialize the weights; ``default`` is PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for all."""
        bound = 1.0 / math.sqrt(self.width)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound)
            if cfg.init == "default":
                self.weight_ih.mul_(cfg.init_gain)
                self.weight_hh.mul_(cfg.init_gain)
            else:
                initialize(self.weight_ih, cfg.init, cfg.init_gain, cfg.init_std, chunks=self.gates)
                initialize(self.weight_hh, cfg.init, cfg.init_gain, cfg.init_std, chunks=self.gates)
                self.bias_ih.zero_()
                self.bias_hh.zero_()
            if cfg.bias_init is not None:
                self.bias_ih.fill_(cfg.bias_init)
                self.bias_hh.zero_()

    def initial_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The zero state."""
        return (like.new_zeros(batch, self.width),)

    def step(
        self, x_proj: torch.Tensor, state: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor, dict[str, torch.Tensor]]:
        """One time step from the projected input.

        Returns (h, state, act_inputs, gates): ``act_inputs`` is a tuple of the tensors the
        saturating nonlinearity was applied to (concatenated only when traced).
        """
        raise NotImplementedError


class RNNCell(Cell):
    """Vanilla (Elman) cell: ``h_t = phi(W x_t + U h_{t-1} + b)``."""

    def __init__(self, in_dim: int, width: int, cfg: ModelConfig) -> None:
        super().__init__(in_dim, width)
        self.act = make_activation(cfg.activation)
        self.reset(cfg)

    def step(self, x_proj, state):
        a = x_proj + state[0] @ self.weight_hh.T + self.bias_hh
        h = self.act(a)
        return h, (h,), (a,), {}


class GRUCell(Cell):
    """Gated recurrent unit, PyTorch's formulation (reset gate inside the candidate)."""

    gates = 3
    gate_names = ("reset", "update")

    def __init__(self, in_dim: int, width: int, cfg: ModelConfig) -> None:
        super().__init__(in_dim, width)
        self.act = Sigmoid()
        self.reset(cfg)

    def step(self, x_proj, state):
        h_prev = state[0]
        xr, xz, xn = x_proj.chunk(3, dim=1)
        hr, hz, hn = (h_prev @ self.weight_hh.T + self.bias_hh).chunk(3, dim=1)
        pre_r, pre_z = xr + hr, xz + hz
        r, z = torch.sigmoid(pre_r), torch.sigmoid(pre_z)
        n = torch.tanh(xn + r * hn)
        h = (1.0 - z) * n + z * h_prev
        return h, (h,), (pre_r, pre_z), {"reset": r, "update": z}


class LSTMCell(Cell):
    """Long short-term memory, PyTorch's gate order (input, forget, cell, output)."""

    gates = 4
    gate_names = ("input", "forget", "output")

    def __init__(self, in_dim: int, width: int, cfg: ModelConfig) -> None:
        super().__init__(in_dim, width)
        self.act = Sigmoid()
        self.reset(cfg)
        # A positive forget bias keeps the cell memory open at initialization
        # (Gers et al. 2000; Jozefowicz et al. 2015).
        with torch.no_grad():
            self.bias_ih[width : 2 * width].fill_(cfg.forget_bias)
            self.bias_hh[width : 2 * width].zero_()

    def initial_state(self, batch, like):
        zeros = like.new_zeros(batch, self.width)
        return (zeros, zeros)

    def step(self, x_proj, state):
        h_prev, c_prev = state
        pre_i, pre_f, pre_g, pre_o = (x_proj + h_prev @ self.weight_hh.T + self.bias_hh).chunk(4, dim=1)
        i, f, o = torch.sigmoid(pre_i), torch.sigmoid(pre_f), torch.sigmoid(pre_o)
        c = f * c_prev + i * torch.tanh(pre_g)
        h = o * torch.tanh(c)
        return h, (h, c), (pre_i, pre_f, pre_o), {"input": i, "forget": f, "output": o}


CELLS: dict[str, Callable[[int, int, ModelConfig], Cell]] = {
    "rnn": RNNCell,
    "gru": GRUCell,
    "lstm": LSTMCell,
}


class Recurrent(nn.Module):
    """Stacked recurrent layers unrolled in Python, so every h_t is an inspectable tensor."""

    def __init__(self, data: Dataset, cfg: ModelConfig) -> None:
        super().__init__()
        dims = [data.input_dim] + [cfg.width] * cfg.depth
        self.cells = nn.ModuleList(CELLS[cfg.name](dims[i], cfg.width, cfg) for i in range(cfg.depth))
        self.head = nn.Linear(cfg.width, data.output_dim)
        _init_linear(self.head, cfg)
        self.readout_steps = data.readout_steps

    def forward(self, x: torch.Tensor, trace: Optional[Trace] = None) -> torch.Tensor:
        batch, length, _ = x.shape
        inputs = x
        top = len(self.cells) - 1
        for index, cell in enumerate(self.cells):
            # One matmul for the input projections of all steps; only the recurrence loops.
            x_proj = inputs @ cell.weight_ih.T + cell.bias_ih
            state = cell.initial_state(batch, x)
            hs, act_inputs = [], []
            gates: dict[str, list[torch.Tensor]] = {g: [] for g in cell.gate_names}
            # unbind, not x_proj[:, t]: each slice's backward would zero-fill a full-size
            # gradient, O(T^2) memory traffic; unbind's backward stacks once.
            for x_t in x_proj.unbind(dim=1):
                h, state, a, g = cell.step(x_t, state)
                hs.append(h)
                if trace is not None:
                    act_inputs.append(a)
                    for name, value in g.items():
                        gates[name].append(value)
            inputs = torch.stack(hs, dim=1)
            if trace is not None:
                trace.add(
                    LayerTrace(
                        f"{type(cell).__name__.removesuffix('Cell').lower()}.{index}",
                        [cell.weight_ih, cell.weight_hh],
                        hs,
                        _stack_act_inputs(act_inputs),
                        inputs,
                        cell.act,
                    )
                )
                if index == top:
                    trace.hidden = hs
                    trace.gates = gates
        if self.readout_steps:
            out = self.head(inputs[:, -self.readout_steps :])
        else:
            out = self.head(inputs[:, -1])
        if trace is not None:
            trace.add(LayerTrace("head", [self.head.weight], [out]))
        return out


def _stack_act_inputs(steps: list[tuple[torch.Tensor, ...]]) -> torch.Tensor:
    """(B, T, sum of widths): per step, the cell's act_inputs side by side.

    The same tensor as stacking ``torch.cat(a, dim=1)`` of every step, built with one stack
    per part and one concatenation instead of a concatenation per step.
    """
    parts = [torch.stack(part, dim=1) for part in zip(*steps)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)


MODELS: dict[str, Callable[[Dataset, ModelConfig], nn.Module]] = {
    "mlp": MLP,
    "resmlp": ResMLP,
    "rnn": Recurrent,
    "gru": Recurrent,
    "lstm": Recurrent,
}


def make_model(data: Dataset, cfg: ModelConfig) -> nn.Module:
    """Build model ``cfg.name`` for the given data set."""
    if cfg.name not in MODELS:
        raise ValueError(f"unknown model {cfg.name!r}; known: {', '.join(MODELS)}")
    return MODELS[cfg.name](data, cfg)

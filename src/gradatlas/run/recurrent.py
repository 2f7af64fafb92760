"""Recurrent architectures: ``depth`` stacked vanilla RNN, GRU or LSTM layers and a linear head.

The cells are written out by hand, with PyTorch's parameter and gate layout, because
``nn.LSTM`` hides the per-step hidden states and gates whose gradients the probes measure.
The head reads the top layer's last state (or its last K states for the copy task).

Inputs are ``(B, T, in)``, or ``(E, B, T, in)`` in a stack (``gradatlas.run.stacking``).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import nn

from gradatlas.run import stacking
from gradatlas.run.activations import Sigmoid, make_activation
from gradatlas.run.config import ModelConfig
from gradatlas.run.data import Dataset
from gradatlas.run.feedforward import init_linear
from gradatlas.run.inits import initialize
from gradatlas.run.trace import LayerTrace, Trace

State = tuple[torch.Tensor, ...]


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

    def recur(self, h: torch.Tensor) -> torch.Tensor:
        """``U h`` of each member (no bias)."""
        return stacking.matmul(h, self.weight_hh)

    def initial_state(self, shape: tuple[int, ...], like: torch.Tensor) -> State:
        """The zero state of ``shape`` (members, batch, units)."""
        return (like.new_zeros(shape),)

    def step(self, x_proj: torch.Tensor, state: State) -> tuple[torch.Tensor, State, State, dict[str, torch.Tensor]]:
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
        a = x_proj + self.recur(state[0]) + stacking.row_bias(self.bias_hh)
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
        xr, xz, xn = x_proj.chunk(3, dim=-1)
        hr, hz, hn = (self.recur(h_prev) + stacking.row_bias(self.bias_hh)).chunk(3, dim=-1)
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

    def initial_state(self, shape, like):
        zeros = like.new_zeros(shape)
        return (zeros, zeros)

    def step(self, x_proj, state):
        h_prev, c_prev = state
        pre = x_proj + self.recur(h_prev) + stacking.row_bias(self.bias_hh)
        pre_i, pre_f, pre_g, pre_o = pre.chunk(4, dim=-1)
        i, f, o = torch.sigmoid(pre_i), torch.sigmoid(pre_f), torch.sigmoid(pre_o)
        c = f * c_prev + i * torch.tanh(pre_g)
        h = o * torch.tanh(c)
        return h, (h, c), (pre_i, pre_f, pre_o), {"input": i, "forget": f, "output": o}


CELLS: dict[str, Callable[[int, int, ModelConfig], Cell]] = {
    "rnn": RNNCell,
    "gru": GRUCell,
    "lstm": LSTMCell,
}


def _stack_act_inputs(steps: list[State], time_dim: int) -> torch.Tensor:
    """(..., B, T, sum of widths): per step, the cell's act_inputs side by side.

    The same tensor as stacking ``torch.cat(a, dim=-1)`` of every step, built with one stack
    per part and one concatenation instead of a concatenation per step.
    """
    parts = [torch.stack(part, dim=time_dim) for part in zip(*steps)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=time_dim + 1)


class Recurrent(nn.Module):
    """Stacked recurrent layers unrolled in Python, so every h_t is an inspectable tensor."""

    def __init__(self, data: Dataset, cfg: ModelConfig) -> None:
        super().__init__()
        dims = [data.input_dim] + [cfg.width] * cfg.depth
        self.cells = nn.ModuleList(CELLS[cfg.name](dims[i], cfg.width, cfg) for i in range(cfg.depth))
        self.head = stacking.Linear(cfg.width, data.output_dim)
        init_linear(self.head, cfg)
        self.readout_steps = data.readout_steps

    def forward(self, x: torch.Tensor, trace: Optional[Trace] = None) -> torch.Tensor:
        members = self.head.member_shape
        time_dim = len(members) + 1
        batch = x.shape[len(members)]
        inputs = x
        top = len(self.cells) - 1
        for index, cell in enumerate(self.cells):
            # One matmul for the input projections of all steps; only the recurrence loops.
            x_proj = stacking.project(inputs, cell.weight_ih, cell.bias_ih)
            state = cell.initial_state((*members, batch, cell.width), x)
            hs, act_inputs = [], []
            gates: dict[str, list[torch.Tensor]] = {g: [] for g in cell.gate_names}
            # unbind, not indexing time step t: each slice's backward would zero-fill a
            # full-size gradient, O(T^2) memory traffic; unbind's backward stacks once.
            for x_t in x_proj.unbind(dim=time_dim):
                h, state, a, g = cell.step(x_t, state)
                hs.append(h)
                if trace is not None:
                    act_inputs.append(a)
                    for name, value in g.items():
                        gates[name].append(value)
            inputs = torch.stack(hs, dim=time_dim)
            if trace is not None:
                trace.add(
                    LayerTrace(
                        f"{type(cell).__name__.removesuffix('Cell').lower()}.{index}",
                        [cell.weight_ih, cell.weight_hh],
                        hs,
                        _stack_act_inputs(act_inputs, time_dim),
                        inputs,
                        cell.act,
                    )
                )
                if index == top:
                    trace.hidden = hs
                    trace.gates = gates
        if self.readout_steps:
            out = self.head(inputs[..., -self.readout_steps :, :])
        else:
            out = self.head(inputs[..., -1, :])
        if trace is not None:
            trace.add(LayerTrace("head", [self.head.weight], [out]))
        return out

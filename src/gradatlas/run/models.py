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

from gradatlas.run.activations import Activation, PReLU, Sigmoid, make_activation
from gradatlas.run.config import ModelConfig
from gradatlas.run.data import Dataset
from gradatlas.run.inits import initialize


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


def _mlp_forward(model: nn.Module, h: torch.Tensor, trace: Optional[Trace]) -> torch.Tensor:
    """The MLP's layers on flattened inputs: shared by ``MLP`` (batch first) and
    ``StackedMLP`` (member first), whose modules take either layout."""
    for i, (linear, norm, act) in enumerate(zip(model.linears, model.norms, model.acts)):
        z = linear(h)
        u = norm(z)
        h = act(u)
        if trace is not None:
            trace.add(LayerTrace(f"hidden.{i}", [linear.weight], [z], u, h, act))
    out = model.head(h)
    if trace is not None:
        trace.add(LayerTrace("head", [model.head.weight], [out]))
    return out


def _resmlp_forward(model: nn.Module, x: torch.Tensor, trace: Optional[Trace]) -> torch.Tensor:
    """The residual MLP's stem, blocks and head on flattened inputs: shared by ``ResMLP``
    and ``StackedResMLP``."""
    h = model.stem(x)
    if trace is not None:
        trace.add(LayerTrace("stem", [model.stem.weight], [h]))
    for i, linear in enumerate(model.linears):
        u = model.norms[i](h)
        a = model.acts[i](u)
        z = linear(a)
        h = h + z
        if trace is not None:
            trace.add(LayerTrace(f"block.{i + 1}", [linear.weight], [z], u, a, model.acts[i]))
    u = model.norms[-1](h)
    out = model.head(model.acts[-1](u))
    if trace is not None:
        trace.add(LayerTrace("head", [model.head.weight], [out]))
    return out


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
        return _mlp_forward(self, x.flatten(1), trace)


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
        return _resmlp_forward(self, x.flatten(1), trace)


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


def _stack_act_inputs(steps: list[tuple[torch.Tensor, ...]], time_dim: int = 1) -> torch.Tensor:
    """(B, T, sum of widths): per step, the cell's act_inputs side by side (with a member
    dimension first, ``time_dim=2``: (E, B, T, sum of widths)).

    The same tensor as stacking ``torch.cat(a, dim=1)`` of every step, built with one stack
    per part and one concatenation instead of a concatenation per step.
    """
    parts = [torch.stack(part, dim=time_dim) for part in zip(*steps)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=time_dim + 1)


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


# ----------------------------------------------------------------------------- stacks
#
# A stack trains E same-shaped runs as one network: every weight has a leading member
# dimension E, and every layer is one batched matmul (``torch.bmm``/``baddbmm``; on these
# sizes ``torch.func.vmap`` measured slower). A single run is a stack of one. Each member's
# parameters are those of the per-run module above, built (and so initialized) exactly as a
# run alone builds them, then stacked; that module's own ``forward`` stays the plain
# reference the tests compare against. No operation mixes members: batched matmuls, batch
# norm per (member, unit) channel, elementwise activations. So a member's values, and a
# non-finite value in one member, never reach another.


def _stack(tensors: list[torch.Tensor]) -> nn.Parameter:
    return nn.Parameter(torch.stack([t.detach() for t in tensors]))


class StackedLinear(nn.Module):
    """E linear layers: ``(E, ..., in) -> (E, ..., out)``, one ``baddbmm``."""

    def __init__(self, layers: list[nn.Linear]) -> None:
        super().__init__()
        self.weight = _stack([layer.weight for layer in layers])  # (E, out, in)
        self.bias = _stack([layer.bias for layer in layers])  # (E, out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        members, *middle, width = h.shape
        out = torch.baddbmm(self.bias.unsqueeze(1), h.reshape(members, -1, width), self.weight.transpose(1, 2))
        return out.view(members, *middle, out.shape[-1])


class ActivationStack(nn.Module):
    """One layer's activation for every member (``member(k)``: member k's, for the probes'
    derivative and slope); only PReLU has parameters, one slope per member."""

    def __init__(self, acts: list[Activation]) -> None:
        super().__init__()
        self.prelu = isinstance(acts[0], PReLU)
        if self.prelu:
            self.weight = _stack([act.weight for act in acts])  # (E, 1)
        self._members = list(acts)  # a plain list: stateless apart from PReLU, not registered twice

    def member(self, k: int) -> Activation:
        """Member k's activation now; a PReLU's slope is a view of the stacked one at this call."""
        if not self.prelu:
            return self._members[k]
        act = PReLU()
        del act._parameters["weight"]
        act.weight = self.weight.detach()[k]  # a plain attribute: the view, not a parameter
        return act

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.prelu:
            slope = self.weight.view(-1, *([1] * (z.dim() - 1)))
            return torch.where(z > 0, z, slope * z)  # F.prelu's definition, per member
        return self._members[0](z)


class StackedBatchNorm(nn.Module):
    """Batch norm with statistics per member and unit: the (member, unit) pairs are the
    channels of one ``F.batch_norm`` call."""

    def __init__(self, norms: list[nn.BatchNorm1d]) -> None:
        super().__init__()
        self.weight = _stack([n.weight for n in norms])
        self.bias = _stack([n.bias for n in norms])
        self.register_buffer("running_mean", torch.stack([n.running_mean for n in norms]).clone())
        self.register_buffer("running_var", torch.stack([n.running_var for n in norms]).clone())
        self.momentum, self.eps = norms[0].momentum, norms[0].eps

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        members, batch, width = z.shape
        flat = z.transpose(0, 1).reshape(batch, members * width)
        out = nn.functional.batch_norm(flat, self.running_mean.view(-1), self.running_var.view(-1),
                                       self.weight.view(-1), self.bias.view(-1), self.training,
                                       self.momentum, self.eps)
        return out.view(batch, members, width).transpose(0, 1)


class StackedLayerNorm(nn.Module):
    """Layer norm (over units) with each member's own gain and shift."""

    def __init__(self, norms: list[nn.LayerNorm]) -> None:
        super().__init__()
        self.weight = _stack([n.weight for n in norms])
        self.bias = _stack([n.bias for n in norms])
        self.shape, self.eps = tuple(norms[0].normalized_shape), norms[0].eps

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[0] == 1:
            # The fused affine of one member: a stack of one rounds as a run alone did.
            return nn.functional.layer_norm(z, self.shape, self.weight[0], self.bias[0], self.eps)
        normalized = nn.functional.layer_norm(z, self.shape, None, None, self.eps)
        return torch.addcmul(self.bias.unsqueeze(1), normalized, self.weight.unsqueeze(1))


def stack_norm(norms: list[nn.Module]) -> nn.Module:
    """The stacked counterpart of ``make_norm``'s modules."""
    if isinstance(norms[0], nn.BatchNorm1d):
        return StackedBatchNorm(norms)
    if isinstance(norms[0], nn.LayerNorm):
        return StackedLayerNorm(norms)
    return nn.Identity()


class StackedMLP(nn.Module):
    """E ``MLP``s as one; input ``(E, B, ...)``, output ``(E, B, classes)``."""

    def __init__(self, members: list[MLP]) -> None:
        super().__init__()
        depth = len(members[0].linears)
        self.linears = nn.ModuleList(StackedLinear([m.linears[i] for m in members]) for i in range(depth))
        self.norms = nn.ModuleList(stack_norm([m.norms[i] for m in members]) for i in range(depth))
        self.acts = nn.ModuleList(ActivationStack([m.acts[i] for m in members]) for i in range(depth))
        self.head = StackedLinear([m.head for m in members])

    def forward(self, x: torch.Tensor, trace: Optional[Trace] = None) -> torch.Tensor:
        return _mlp_forward(self, x.flatten(2), trace)


class StackedResMLP(nn.Module):
    """E ``ResMLP``s as one."""

    def __init__(self, members: list[ResMLP]) -> None:
        super().__init__()
        blocks = len(members[0].linears)
        self.stem = StackedLinear([m.stem for m in members])
        self.linears = nn.ModuleList(StackedLinear([m.linears[i] for m in members]) for i in range(blocks))
        self.norms = nn.ModuleList(stack_norm([m.norms[i] for m in members]) for i in range(blocks + 1))
        self.acts = nn.ModuleList(ActivationStack([m.acts[i] for m in members]) for i in range(blocks + 1))
        self.head = StackedLinear([m.head for m in members])

    def forward(self, x: torch.Tensor, trace: Optional[Trace] = None) -> torch.Tensor:
        return _resmlp_forward(self, x.flatten(2), trace)


class StackedCell(nn.Module):
    """E recurrent cells of one kind; ``step`` is the cell's own arithmetic, in the same
    order, with a batched matmul for the recurrence."""

    def __init__(self, cells: list[Cell]) -> None:
        super().__init__()
        first = cells[0]
        self.kind, self.width, self.gate_names = type(first), first.width, first.gate_names
        self.weight_ih = _stack([c.weight_ih for c in cells])  # (E, G*H, in)
        self.weight_hh = _stack([c.weight_hh for c in cells])  # (E, G*H, H)
        self.bias_ih = _stack([c.bias_ih for c in cells])
        self.bias_hh = _stack([c.bias_hh for c in cells])
        self.act = ActivationStack([c.act for c in cells])

    def initial_state(self, members: int, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The zero state (and zero cell memory for an LSTM)."""
        zeros = like.new_zeros(members, batch, self.width)
        return (zeros, zeros) if self.kind is LSTMCell else (zeros,)

    def _recur(self, h_prev: torch.Tensor) -> torch.Tensor:
        return torch.bmm(h_prev, self.weight_hh.transpose(1, 2))

    def step(self, x_proj: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """As ``Cell.step``, every tensor with the member dimension first."""
        bias = self.bias_hh.unsqueeze(1)
        if self.kind is RNNCell:
            a = x_proj + self._recur(state[0]) + bias
            h = self.act(a)
            return h, (h,), (a,), {}
        if self.kind is GRUCell:
            h_prev = state[0]
            xr, xz, xn = x_proj.chunk(3, dim=-1)
            hr, hz, hn = (self._recur(h_prev) + bias).chunk(3, dim=-1)
            pre_r, pre_z = xr + hr, xz + hz
            r, z = torch.sigmoid(pre_r), torch.sigmoid(pre_z)
            n = torch.tanh(xn + r * hn)
            h = (1.0 - z) * n + z * h_prev
            return h, (h,), (pre_r, pre_z), {"reset": r, "update": z}
        h_prev, c_prev = state
        pre_i, pre_f, pre_g, pre_o = (x_proj + self._recur(h_prev) + bias).chunk(4, dim=-1)
        i, f, o = torch.sigmoid(pre_i), torch.sigmoid(pre_f), torch.sigmoid(pre_o)
        c = f * c_prev + i * torch.tanh(pre_g)
        h = o * torch.tanh(c)
        return h, (h, c), (pre_i, pre_f, pre_o), {"input": i, "forget": f, "output": o}


class StackedRecurrent(nn.Module):
    """E ``Recurrent`` models as one; input ``(E, B, T, in)``."""

    def __init__(self, members: list[Recurrent]) -> None:
        super().__init__()
        depth = len(members[0].cells)
        self.cells = nn.ModuleList(StackedCell([m.cells[i] for m in members]) for i in range(depth))
        self.head = StackedLinear([m.head for m in members])
        self.readout_steps = members[0].readout_steps

    def forward(self, x: torch.Tensor, trace: Optional[Trace] = None) -> torch.Tensor:
        members, batch, length, _ = x.shape
        inputs = x
        top = len(self.cells) - 1
        for index, cell in enumerate(self.cells):
            # One matmul for the input projections of all steps; only the recurrence loops.
            x_proj = torch.bmm(inputs.reshape(members, batch * length, -1), cell.weight_ih.transpose(1, 2))
            x_proj = x_proj.view(members, batch, length, -1) + cell.bias_ih.view(members, 1, 1, -1)
            state = cell.initial_state(members, batch, x)
            hs, act_inputs = [], []
            gates: dict[str, list[torch.Tensor]] = {g: [] for g in cell.gate_names}
            # unbind, not x_proj[:, :, t]: see Recurrent.forward.
            for x_t in x_proj.unbind(dim=2):
                h, state, a, g = cell.step(x_t, state)
                hs.append(h)
                if trace is not None:
                    act_inputs.append(a)
                    for name, value in g.items():
                        gates[name].append(value)
            inputs = torch.stack(hs, dim=2)
            if trace is not None:
                trace.add(
                    LayerTrace(
                        f"{cell.kind.__name__.removesuffix('Cell').lower()}.{index}",
                        [cell.weight_ih, cell.weight_hh],
                        hs,
                        _stack_act_inputs(act_inputs, time_dim=2),
                        inputs,
                        cell.act,
                    )
                )
                if index == top:
                    trace.hidden = hs
                    trace.gates = gates
        if self.readout_steps:
            out = self.head(inputs[:, :, -self.readout_steps :])
        else:
            out = self.head(inputs[:, :, -1])
        if trace is not None:
            trace.add(LayerTrace("head", [self.head.weight], [out]))
        return out


STACKED: dict[type, Callable[[list], nn.Module]] = {
    MLP: StackedMLP,
    ResMLP: StackedResMLP,
    Recurrent: StackedRecurrent,
}


def stack_models(members: list[nn.Module]) -> nn.Module:
    """One stacked network from same-shaped per-run models (their parameters are copied:
    member k starts exactly where ``members[k]`` does)."""
    kinds = {type(m) for m in members}
    if len(kinds) != 1:
        raise ValueError(f"a stack needs models of one kind, got {sorted(k.__name__ for k in kinds)}")
    shapes = {tuple((name, tuple(p.shape)) for name, p in m.named_parameters()) for m in members}
    if len(shapes) != 1:
        raise ValueError("a stack needs models whose parameters have the same shapes")
    return STACKED[kinds.pop()](members)


def _member_tensor(tensor: torch.Tensor, k: int) -> torch.Tensor:
    """Member ``k``'s slice of a stacked tensor, holding the slice of its gradient as ``.grad``."""
    view = tensor.detach()[k]
    if tensor.grad is not None:
        view.grad = tensor.grad[k]
    return view


def member_trace(trace: Trace, k: int, weights: dict[int, torch.Tensor]) -> Trace:
    """Member ``k``'s part of a stacked trace after backward, in the shape of a run's own
    trace (the probes measure it unchanged). ``weights`` maps id(stacked weight) to member
    k's view of it and is filled here, so that one view stands for one weight throughout."""

    def weight(w: torch.Tensor) -> torch.Tensor:
        if id(w) not in weights:
            weights[id(w)] = _member_tensor(w, k)
        return weights[id(w)]

    out = Trace()
    for layer in trace.layers:
        out.layers.append(LayerTrace(
            layer.name,
            [weight(w) for w in layer.weights],
            [_member_tensor(t, k) for t in layer.preacts],
            None if layer.act_input is None else layer.act_input.detach()[k],
            None if layer.act_output is None else layer.act_output.detach()[k],
            None if layer.activation is None else layer.activation.member(k),
        ))
    out.hidden = [_member_tensor(h, k) for h in trace.hidden]
    out.gates = {name: [g.detach()[k] for g in values] for name, values in trace.gates.items()}
    return out

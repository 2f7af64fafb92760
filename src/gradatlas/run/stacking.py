"""The member dimension: E same-shaped runs trained as one network (a stack).

Every model of ``gradatlas.run.models`` is written once, for parameters with or without a
leading member dimension E; this module holds everything that differs between the two. A
run's model is built (and so initialized) alone, exactly as a run alone builds it;
``stack_models`` then stacks the parameters of E such models into one model of the same
class, member k starting exactly where model k does. A single run is trained as a stack of
one; its model without a member dimension is the plain reference the tests compare against.

With a member dimension every layer is one batched matmul (``torch.bmm``/``baddbmm``; on these
sizes ``torch.func.vmap`` measured slower), batch norm normalizes each (member, unit) pair as
a channel of one call, and activations are elementwise: no operation mixes members, so a
member's values, and a non-finite value in one member, never reach another.

The rest of a stack's bookkeeping lives here too: member views of a traced pass for the
probes (``member_trace``), and the groups of members that share a hyperparameter value, which
the optimizer and the clipping update through slices (``member_groups``).
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence, Union

import torch
from torch import nn

from gradatlas.run.trace import LayerTrace, Trace

# A hyperparameter: one value for every member, or one per member of a stack.
Hyper = Union[float, Sequence[float]]


# ----------------------------------------------------------------------------- operations


def member_shape(weight: torch.Tensor, dims: int) -> tuple[int, ...]:
    """The member dimensions of a parameter whose own tensor has ``dims`` dimensions: ``()``
    for a run's model, ``(E,)`` for a stack's."""
    return tuple(weight.shape[: weight.dim() - dims])


def matmul(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``h W^T`` of each member: ``(..., B, in) x (..., out, in) -> (..., B, out)``."""
    if weight.dim() == 2:
        return h @ weight.T
    return torch.bmm(h, weight.transpose(1, 2))


def row_bias(bias: torch.Tensor) -> torch.Tensor:
    """A bias shaped to be added to ``matmul``'s output (broadcast over the batch rows)."""
    return bias if bias.dim() == 1 else bias.unsqueeze(1)


def project(inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``inputs W^T + b`` over every leading position (a recurrent layer's input projections
    of all time steps): a matmul, then the bias added."""
    if weight.dim() == 2:
        return inputs @ weight.T + bias
    members = weight.shape[0]
    out = torch.bmm(inputs.reshape(members, -1, inputs.shape[-1]), weight.transpose(1, 2))
    return out.view(*inputs.shape[:-1], -1) + bias.view(members, *([1] * (inputs.dim() - 2)), -1)


def prelu(z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """PReLU with one learned slope (``weight``: ``(1,)``, or ``(E, 1)`` one per member)."""
    if weight.dim() == 1:
        return nn.functional.prelu(z, weight)
    slope = weight.view(-1, *([1] * (z.dim() - 1)))
    return torch.where(z > 0, z, slope * z)  # F.prelu's definition, per member


class Linear(nn.Linear):
    """``nn.Linear`` (its initialization too) for inputs ``(B, in)``, or ``(E, ..., in)`` with
    a member dimension: then one ``baddbmm``."""

    @property
    def member_shape(self) -> tuple[int, ...]:
        """``()`` in a run's model, ``(E,)`` in a stack's."""
        return member_shape(self.weight, 2)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.weight.dim() == 2:
            return nn.functional.linear(h, self.weight, self.bias)
        members, *middle, width = h.shape
        out = torch.baddbmm(self.bias.unsqueeze(1), h.reshape(members, -1, width), self.weight.transpose(1, 2))
        return out.view(members, *middle, out.shape[-1])


class BatchNorm(nn.Module):
    """``nn.BatchNorm1d`` (default momentum and eps) on ``(B, units)``; with a member dimension
    ``(E, B, units)``, statistics per member and unit: the (member, unit) pairs are the
    channels of one ``F.batch_norm`` call."""

    def __init__(self, width: int, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.register_buffer("running_mean", torch.zeros(width))
        self.register_buffer("running_var", torch.ones(width))
        self.momentum, self.eps = momentum, eps

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.weight.dim() == 1:
            return nn.functional.batch_norm(z, self.running_mean, self.running_var, self.weight, self.bias,
                                            self.training, self.momentum, self.eps)
        members, batch, width = z.shape
        flat = z.transpose(0, 1).reshape(batch, members * width)
        out = nn.functional.batch_norm(flat, self.running_mean.view(-1), self.running_var.view(-1),
                                       self.weight.view(-1), self.bias.view(-1), self.training,
                                       self.momentum, self.eps)
        return out.view(batch, members, width).transpose(0, 1)


class LayerNorm(nn.Module):
    """``nn.LayerNorm`` over the units, with each member's own gain and shift."""

    def __init__(self, width: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.shape, self.eps = (width,), eps

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.weight.dim() == 1:
            return nn.functional.layer_norm(z, self.shape, self.weight, self.bias, self.eps)
        if z.shape[0] == 1:
            # The fused affine of one member: a stack of one rounds as a run alone does.
            return nn.functional.layer_norm(z, self.shape, self.weight[0], self.bias[0], self.eps)
        normalized = nn.functional.layer_norm(z, self.shape, None, None, self.eps)
        return torch.addcmul(self.bias.unsqueeze(1), normalized, self.weight.unsqueeze(1))


# ----------------------------------------------------------------------------- stacks


def stack_models(members: list[nn.Module]) -> nn.Module:
    """One model of the members' class whose every parameter and buffer is theirs stacked
    along a new leading member dimension (copied: member k starts exactly where
    ``members[k]`` does; the parameters keep their order)."""
    kinds = {type(m) for m in members}
    if len(kinds) != 1:
        raise ValueError(f"a stack needs models of one kind, got {sorted(k.__name__ for k in kinds)}")
    shapes = {tuple((name, tuple(p.shape)) for name, p in m.named_parameters()) for m in members}
    if len(shapes) != 1:
        raise ValueError("a stack needs models whose parameters have the same shapes")
    stack = copy.deepcopy(members[0])
    for name, _ in members[0].named_parameters():
        owner, _, leaf = name.rpartition(".")
        stacked = torch.stack([m.get_parameter(name).detach() for m in members])
        setattr(stack.get_submodule(owner), leaf, nn.Parameter(stacked))
    for name, _ in members[0].named_buffers():
        owner, _, leaf = name.rpartition(".")
        setattr(stack.get_submodule(owner), leaf, torch.stack([m.get_buffer(name) for m in members]))
    return stack


def member_count(model: nn.Module) -> int:
    """E, the number of members of a stacked model."""
    return next(model.parameters()).shape[0]


def member_activation(activation: nn.Module, k: int) -> nn.Module:
    """Member k's activation: the module itself where it has no parameters, else a copy whose
    parameters (a PReLU's slope) are plain views of member k's at this call."""
    own = dict(activation.named_parameters(recurse=False))
    if not own:
        return activation
    view = copy.copy(activation)
    view._parameters = {}
    for name, p in own.items():
        setattr(view, name, p.detach()[k])
    return view


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
            None if layer.activation is None else member_activation(layer.activation, k),
        ))
    out.inputs = None if trace.inputs is None else trace.inputs.detach()[k]
    out.hidden = [_member_tensor(h, k) for h in trace.hidden]
    out.gates = {name: [g.detach()[k] for g in values] for name, values in trace.gates.items()}
    return out


# ----------------------------------------------------------------------------- member groups


def member_groups(value: Hyper) -> list[tuple[float, Optional[list[int]]]]:
    """(value, members) for each distinct value; members is None where one value holds for
    the whole stack (then whole tensors are updated, not slices)."""
    if isinstance(value, (int, float)):
        return [(float(value), None)]
    values = [float(v) for v in value]
    if len(set(values)) == 1:
        return [(values[0], None)]
    groups: dict[float, list[int]] = {}
    for k, v in enumerate(values):
        groups.setdefault(v, []).append(k)
    return list(groups.items())


def member_slices(tensors: list[torch.Tensor], members: Optional[list[int]]) -> list[torch.Tensor]:
    """The tensors themselves, or the members' slices of each (member dimension first)."""
    return tensors if members is None else [t[k] for t in tensors for k in members]


def per_member(value: Hyper, like: torch.Tensor) -> torch.Tensor:
    """The hyperparameter as a float64 tensor shaped to broadcast over ``like``'s members."""
    values = [float(value)] if isinstance(value, (int, float)) else [float(v) for v in value]
    return torch.tensor(values, dtype=torch.float64, device=like.device).view(-1, *([1] * (like.dim() - 1)))

"""Gradient and activation statistics, one quantity per class (after Cockpit's design).

A layer quantity maps one ``LayerTrace`` to a scalar tensor (or ``None`` where it does not
apply); a time-step quantity maps a ``Trace`` to one value per time step. All values stay
on the device until a probe step is finished, then move to the host in one transfer.

Normalisation convention: a backpropagated norm is the norm of the gradient of the
*per-example* loss, averaged over the batch. The training loss is a batch mean, so the
autograd gradient of example ``b`` is ``1/B`` of that; multiplying by ``B`` makes the value
independent of the batch size (exact without batch norm, which couples examples).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from gradatlas.activations import PReLU
from gradatlas.config import ProbeConfig
from gradatlas.models import LayerTrace, Trace


def per_example_grad_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Batch-mean of the per-example norm of the gradients held by ``tensors``, times B.

    Each tensor has the batch in dim 0; the per-example norm runs over all other dims and
    over all tensors together.
    """
    batch = tensors[0].shape[0]
    squares = None
    for tensor in tensors:
        grad = tensor.grad if tensor.grad is not None else torch.zeros_like(tensor)
        # float64: vanishing gradients reach 1e-25 and their squares underflow float32.
        sq = grad.detach().reshape(batch, -1).double().pow(2).sum(dim=1)
        squares = sq if squares is None else squares + sq
    assert squares is not None
    return squares.sqrt().mean() * batch


def _stacked_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    # float64 so that tiny gradients do not underflow when squared.
    return torch.sqrt(sum(t.detach().double().pow(2).sum() for t in tensors))


class LayerQuantity:
    """A per-layer statistic; subclasses set ``name`` and implement ``measure``."""

    name = ""

    def measure(self, layer: LayerTrace) -> Optional[torch.Tensor]:
        """The statistic of ``layer`` after the backward pass, or None if not applicable."""
        raise NotImplementedError


class WeightGradNorm(LayerQuantity):
    """Frobenius norm of dLoss/dW (all weight matrices of the layer together), before clipping."""

    name = "weight_grad_norm"

    def measure(self, layer):
        grads = [w.grad for w in layer.weights if w.grad is not None]
        return _stacked_norm(grads) if grads else None


class BackpropNorm(LayerQuantity):
    """Norm of dLoss/dz for the layer's pre-activation z (per example, batch mean).

    For a recurrent layer the norm runs over all its hidden states h_1..h_T together.
    """

    name = "backprop_norm"

    def measure(self, layer):
        return per_example_grad_norm(layer.preacts)


class ActMean(LayerQuantity):
    """Mean of the activation output over examples and units."""

    name = "act_mean"

    def measure(self, layer):
        return None if layer.act_output is None else layer.act_output.detach().mean()


class ActStd(LayerQuantity):
    """Standard deviation (population) of the activation output over examples and units."""

    name = "act_std"

    def measure(self, layer):
        return None if layer.act_output is None else layer.act_output.detach().std(correction=0)


@dataclass
class SaturatedFrac(LayerQuantity):
    """Share of (example, unit) pairs where |phi'(z)| < threshold * sup|phi'|.

    One relative threshold serves all activations: with 0.1 a sigmoid unit is saturated
    beyond |z| ~ 3.6 and a tanh unit beyond |z| ~ 1.8; a ReLU unit with z < 0 counts as
    saturated (zero slope). For gated recurrent cells it is measured on the sigmoid gates.
    """

    threshold: float = 0.1
    name = "saturated_frac"

    def measure(self, layer):
        if layer.act_input is None or layer.activation is None:
            return None
        slope = layer.activation.derivative(layer.act_input.detach()).abs()
        return (slope < self.threshold * layer.activation.max_slope).float().mean()


class DeadFrac(LayerQuantity):
    """Share of units whose output is exactly zero for every example (and time step)."""

    name = "dead_frac"

    def measure(self, layer):
        if layer.act_output is None:
            return None
        out = layer.act_output.detach()
        return (out.reshape(-1, out.shape[-1]) == 0).all(dim=0).float().mean()


class WeightNorm(LayerQuantity):
    """Frobenius norm of the layer's weights."""

    name = "weight_norm"

    def measure(self, layer):
        return _stacked_norm(layer.weights)


class PReLUSlope(LayerQuantity):
    """The learned negative slope of a PReLU layer."""

    name = "prelu_slope"

    def measure(self, layer):
        if isinstance(layer.activation, PReLU):
            return layer.activation.weight.detach().reshape(())
        return None


def layer_quantities(cfg: ProbeConfig) -> list[LayerQuantity]:
    """The per-layer quantities measured after the backward pass of a probe step."""
    return [
        WeightGradNorm(),
        BackpropNorm(),
        ActMean(),
        ActStd(),
        SaturatedFrac(cfg.saturation),
        DeadFrac(),
        WeightNorm(),
        PReLUSlope(),
    ]


def hidden_grad_norms(trace: Trace) -> torch.Tensor:
    """dLoss/dh_t norm (per example, batch mean) for t = 1..T of the top recurrent layer."""
    return torch.stack([per_example_grad_norm([h]) for h in trace.hidden])


def hidden_norms(trace: Trace) -> torch.Tensor:
    """Mean over the batch of ||h_t|| for t = 1..T."""
    return torch.stack([h.detach().norm(dim=1).mean() for h in trace.hidden])


def gate_statistics(trace: Trace, threshold: float) -> dict[str, torch.Tensor]:
    """Per gate and time step: saturated share (sigma' < threshold/4) and mean gate value."""
    out: dict[str, torch.Tensor] = {}
    for gate, values in trace.gates.items():
        g = torch.stack([v.detach() for v in values])  # (T, B, H)
        out[f"saturated_frac.{gate}"] = (g * (1 - g) < threshold * 0.25).float().mean(dim=(1, 2))
        out[f"gate_mean.{gate}"] = g.mean(dim=(1, 2))
    return out


def probe_schedule(cfg: ProbeConfig, total_steps: int) -> set[int]:
    """Steps to probe: dense at first, then log-spaced, then every ``cfg.every``, plus the last."""
    if not cfg.enabled or total_steps < 1:
        return set()
    steps = set(range(min(cfg.dense_until, total_steps)))
    power = 1
    while power <= min(cfg.log_until, total_steps - 1):
        steps.add(power)
        power *= 2
    steps.update(range(0, total_steps, cfg.every))
    steps.add(total_steps - 1)
    return steps


@dataclass
class Prober:
    """Measures a probe step in two halves: after backward (gradients, activations) and after
    the optimizer step (update ratio). Rows accumulate as plain tuples."""

    cfg: ProbeConfig
    total_steps: int
    layer_rows: list[tuple[int, int, str, str, float]] = field(default_factory=list)
    timestep_rows: list[tuple[int, int, str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.steps = probe_schedule(self.cfg, self.total_steps)
        self.quantities = layer_quantities(self.cfg)
        self._pending: list[tuple[int, str, str, torch.Tensor]] = []
        self._series: dict[str, torch.Tensor] = {}
        self._before: list[list[torch.Tensor]] = []
        self._trace: Optional[Trace] = None

    def wants(self, step: int) -> bool:
        """Whether ``step`` is on the schedule."""
        return step in self.steps

    def after_backward(self, trace: Trace) -> None:
        """Measure gradients and activations of the traced step, before clipping."""
        self._trace = trace
        self._pending = []
        for index, layer in enumerate(trace.layers):
            for quantity in self.quantities:
                value = quantity.measure(layer)
                if value is not None:
                    self._pending.append((index, layer.name, quantity.name, value))
        self._series = {}
        if trace.hidden:
            self._series["hidden_grad_norm"] = hidden_grad_norms(trace)
            self._series["hidden_norm"] = hidden_norms(trace)
            self._series.update(gate_statistics(trace, self.cfg.saturation))
        self._before = [[w.detach().clone() for w in layer.weights] for layer in trace.layers]

    def after_update(self, step: int) -> None:
        """Add the update ratio ||W_new - W_old|| / ||W_old|| and commit the step's rows."""
        assert self._trace is not None, "after_backward must come first"
        for index, (layer, before) in enumerate(zip(self._trace.layers, self._before)):
            delta = _stacked_norm([w.detach() - b for w, b in zip(layer.weights, before)])
            self._pending.append((index, layer.name, "update_ratio", delta / _stacked_norm(before)))
        self.commit(step)

    def commit(self, step: int) -> None:
        """Move the pending values to the host (one transfer) and append them as rows."""
        if self._pending:
            values = torch.stack([v.double() for *_, v in self._pending]).cpu().tolist()
            for (index, name, quantity, _), value in zip(self._pending, values):
                self.layer_rows.append((step, index, name, quantity, value))
        for quantity, series in self._series.items():
            for t, value in enumerate(series.double().cpu().tolist(), start=1):
                self.timestep_rows.append((step, t, quantity, value))
        self._pending, self._series, self._before, self._trace = [], {}, [], None

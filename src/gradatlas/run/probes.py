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

import contextlib
import math
from dataclasses import dataclass, field
from typing import Iterator, Optional

import torch

from gradatlas.run.activations import ELU, SELU, Activation, LeakyReLU, Linear, PReLU, ReLU, Sigmoid, Step, Tanh
from gradatlas.run.config import ProbeConfig
from gradatlas.run.models import LayerTrace, Trace

# Per-example squared gradient norms of the tensors of one probe step, keyed by id(tensor):
# the top recurrent layer's hidden states feed both its backprop_norm and hidden_grad_norm,
# so their squares are computed once. Active only inside ``_shared_squares()``.
_SQUARES: Optional[dict[int, tuple[torch.Tensor, torch.Tensor]]] = None


@contextlib.contextmanager
def _shared_squares() -> Iterator[None]:
    global _SQUARES
    previous, _SQUARES = _SQUARES, {}
    try:
        yield
    finally:
        _SQUARES = previous


def _squares(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """``t.pow(2)`` of every tensor in one foreach multiplication (x * x, as pow(x, 2) is)."""
    return list(torch._foreach_mul(tensors, tensors)) if tensors else []


def _example_squares(tensors: list[torch.Tensor], batch: int) -> list[torch.Tensor]:
    """Per tensor, the per-example sum of squares of ``tensor.grad`` (batch in dim 0), float64."""
    cache = _SQUARES if _SQUARES is not None else {}
    missing: dict[int, torch.Tensor] = {}
    for tensor in tensors:
        hit = cache.get(id(tensor))
        if hit is None or hit[0] is not tensor:
            missing[id(tensor)] = tensor
    # float64: vanishing gradients reach 1e-25 and their squares underflow float32.
    grads = [(t.grad if t.grad is not None else torch.zeros_like(t)).reshape(batch, -1).double()
             for t in missing.values()]
    for tensor, sq in zip(missing.values(), _squares(grads)):
        cache[id(tensor)] = (tensor, sq.sum(dim=1))  # the tensor is kept so that its id stays unique
    return [cache[id(tensor)][1] for tensor in tensors]


def _per_example_squares(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Per-example squared norm over all ``tensors`` together (added left to right)."""
    squares = None
    for sq in _example_squares(tensors, tensors[0].shape[0]):
        squares = sq if squares is None else squares + sq
    assert squares is not None
    return squares


def per_example_grad_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Batch-mean of the per-example norm of the gradients held by ``tensors``, times B.

    Each tensor has the batch in dim 0; the per-example norm runs over all other dims and
    over all tensors together.
    """
    return _per_example_squares(tensors).sqrt().mean() * tensors[0].shape[0]


def _stacked_norms(groups: list[list[torch.Tensor]]) -> torch.Tensor:
    """``_stacked_norm`` of every (non-empty) group, as one float64 vector.

    Elementwise steps (squares, square roots) run once for all groups; each tensor's sum
    stays its own reduction, so every value equals ``_stacked_norm(group)`` bit for bit.
    """
    sums = iter(sq.sum() for sq in _squares([t.detach().double() for group in groups for t in group]))
    totals = []
    for group in groups:
        total = next(sums)
        for _ in group[1:]:
            total = total + next(sums)
        totals.append(total)
    return torch.stack(totals).sqrt()


def _stacked_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """sqrt of the sum of squares of all ``tensors``, in float64 (tiny gradients would
    underflow when squared in float32); the squares are added left to right."""
    if not tensors:
        return torch.zeros((), dtype=torch.float64)
    return _stacked_norms([tensors])[0]


# Activations whose derivative is never negative: there saturation needs no abs(). Exact
# types only, so that a subclass with another derivative gets the abs().
_NONNEGATIVE_SLOPE = frozenset({Step, Linear, Sigmoid, Tanh, ReLU, ELU, SELU})


class LayerQuantity:
    """A per-layer statistic; subclasses set ``name`` and implement ``measure``.

    ``measure_all`` measures every layer of a trace; a subclass may override it to share
    elementwise work between layers, as long as every value stays what ``measure`` gives.
    """

    name = ""

    def measure(self, layer: LayerTrace) -> Optional[torch.Tensor]:
        """The statistic of ``layer`` after the backward pass, or None if not applicable."""
        raise NotImplementedError

    def measure_all(self, layers: list[LayerTrace]) -> list[Optional[torch.Tensor]]:
        """``measure`` of every layer, in order."""
        return [self.measure(layer) for layer in layers]


class WeightGradNorm(LayerQuantity):
    """Frobenius norm of dLoss/dW (all weight matrices of the layer together), before clipping."""

    name = "weight_grad_norm"

    def measure(self, layer):
        return self.measure_all([layer])[0]

    def measure_all(self, layers):
        grads = [[w.grad for w in layer.weights if w.grad is not None] for layer in layers]
        present = [i for i, g in enumerate(grads) if g]
        out: list[Optional[torch.Tensor]] = [None] * len(layers)
        if present:
            for i, norm in zip(present, _stacked_norms([grads[i] for i in present]).unbind()):
                out[i] = norm
        return out


class BackpropNorm(LayerQuantity):
    """Norm of dLoss/dz for the layer's pre-activation z (per example, batch mean).

    For a recurrent layer the norm runs over all its hidden states h_1..h_T together.
    """

    name = "backprop_norm"

    def measure(self, layer):
        return per_example_grad_norm(layer.preacts)

    def measure_all(self, layers):
        batches = {layer.preacts[0].shape[0] for layer in layers}
        if len(batches) != 1:
            return super().measure_all(layers)
        # One foreach for all squares and all square roots; the "* B" once for all layers.
        roots = torch._foreach_sqrt([_per_example_squares(layer.preacts) for layer in layers])
        values = torch.stack([root.mean() for root in roots]) * batches.pop()
        return list(values.unbind())


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
        slope = layer.activation.derivative(layer.act_input.detach())
        if type(layer.activation) not in _NONNEGATIVE_SLOPE:
            slope = slope.abs()  # |x| = x where x >= 0, so skipping it changes no comparison
        return (slope < self.threshold * layer.activation.max_slope).float().mean()


# A unit is dead when |phi'(z)| < DEAD_SLOPE_SHARE * sup|phi'| for every example of the probe
# set. 0.05 lies between the two slopes the metric must tell apart, a factor 5 from each: a
# leaky ReLU unit wholly in its negative regime (slope 0.01, passing 1 % of the gradient) is
# dead, a PReLU unit at its initial slope 0.25 is not. A sigmoid unit is dead beyond
# |z| ~ 4.4 for every example, a tanh unit beyond |z| ~ 2.2, an ELU unit below z ~ -3.
DEAD_SLOPE_SHARE = 0.05
# The probe set: this many training examples (all of them if the training set is smaller),
# drawn once at the start of a run and fed through the model on every probe step.
PROBE_SET_SIZE = 1024


# Activations whose derivative is monotone in z (one jump or one monotone piece): over a set of
# z its largest |phi'| is at the smallest or the largest z. SELU is not (its slope drops at 0).
_MONOTONE_SLOPE = frozenset({Step, Linear, ReLU, LeakyReLU, PReLU, ELU})
# Activations whose |phi'| is even and decreasing in |z|: the largest is at the smallest |z|.
_PEAKED_AT_ZERO = frozenset({Sigmoid, Tanh})


def largest_slope(activation: Activation, z: torch.Tensor) -> torch.Tensor:
    """Per column of ``z`` (examples x units), max over the rows of |phi'(z)|.

    The same value as ``activation.derivative(z).abs().amax(dim=0)``; where the shape of phi'
    allows (exact types, as for ``_NONNEGATIVE_SLOPE``) the derivative is taken at one or two
    values per unit instead of at every example, which makes the probe set's dead units cheap.
    """
    kind = type(activation)
    if kind in _MONOTONE_SLOPE:
        # amin and amax, not aminmax: on CPU aminmax(dim=0) is ~10x slower than both together.
        ends = activation.derivative(torch.stack([z.amin(dim=0), z.amax(dim=0)]))
        return (ends if kind in _NONNEGATIVE_SLOPE else ends.abs()).amax(dim=0)
    if kind in _PEAKED_AT_ZERO:
        return activation.derivative(z.abs().amin(dim=0))
    slope = activation.derivative(z)
    if kind in _NONNEGATIVE_SLOPE:
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


@torch.no_grad()
def probe_set_trace(model: torch.nn.Module, x: torch.Tensor) -> Trace:
    """A traced forward pass of the probe set ``x``, leaving the model as it was.

    The model stays in its mode (batch norm in training mode normalizes with the probe set's
    own statistics, as it does with a batch); its buffers (batch norm's running statistics)
    are restored afterwards, so probing does not change training.
    """
    buffers = [(b, b.clone()) for b in model.buffers()]
    trace = Trace()
    model(x, trace)
    for buffer, saved in buffers:
        buffer.copy_(saved)
    return trace


# The smallest normal float32: a gradient entry below it in magnitude is 0 or subnormal.
FLOAT32_TINY = torch.finfo(torch.float32).tiny


def _underflow_flags(groups: list[list[torch.Tensor]]) -> torch.Tensor:
    """Per group of tensors, 1.0 (float64) where every entry of every tensor's gradient is 0 or
    subnormal in float32, else 0.0; a missing gradient counts as 0. One foreach for all groups."""
    grads = [t.grad.detach() for group in groups for t in group if t.grad is not None]
    largest = iter(torch._foreach_norm(grads, ord=math.inf)) if grads else iter(())
    maxima = []
    for group in groups:
        present = [next(largest) for t in group if t.grad is not None]
        maxima.append(torch.stack(present).max().double() if present
                      else torch.zeros((), dtype=torch.float64, device=group[0].device))
    return (torch.stack(maxima) < FLOAT32_TINY).double() if maxima else torch.zeros(0, dtype=torch.float64)


class Underflow(LayerQuantity):
    """1.0 where the layer's backpropagated gradient dLoss/dz (all its entries; for a recurrent
    layer all h_t) is exactly 0 or subnormal in float32, else 0.0: there the gradient is lost
    to float32, and its norm (computed in float64) is no measurement of the network."""

    name = "underflow"

    def measure(self, layer):
        return self.measure_all([layer])[0]

    def measure_all(self, layers):
        return list(_underflow_flags([layer.preacts for layer in layers]).unbind())


class WeightNorm(LayerQuantity):
    """Frobenius norm of the layer's weights."""

    name = "weight_norm"

    def measure(self, layer):
        return _stacked_norm(layer.weights)

    def measure_all(self, layers):
        return list(_stacked_norms([layer.weights for layer in layers]).unbind()) if layers else []


class PReLUSlope(LayerQuantity):
    """The learned negative slope of a PReLU layer at the probed step (before its update)."""

    name = "prelu_slope"

    def measure(self, layer):
        if isinstance(layer.activation, PReLU):
            # A copy: the parameter itself changes in place with the optimizer step, after
            # which the value is read (a view would record the slope one update late).
            return layer.activation.weight.detach().clone().reshape(())
        return None


def layer_quantities(cfg: ProbeConfig) -> list[LayerQuantity]:
    """The per-layer quantities measured after the backward pass of a probe step."""
    return [
        WeightGradNorm(),
        BackpropNorm(),
        ActMean(),
        ActStd(),
        SaturatedFrac(cfg.saturation),
        WeightNorm(),
        PReLUSlope(),
        Underflow(),
    ]


def hidden_grad_norms(trace: Trace) -> torch.Tensor:
    """dLoss/dh_t norm (per example, batch mean) for t = 1..T of the top recurrent layer."""
    # per_example_grad_norm([h]) for every h, its elementwise steps once for all steps.
    batch = trace.hidden[0].shape[0]
    roots = torch._foreach_sqrt(_example_squares(trace.hidden, batch))
    return torch.stack([root.mean() for root in roots]) * batch


def hidden_underflow(trace: Trace) -> torch.Tensor:
    """Per t = 1..T, 1.0 where dLoss/dh_t of the top recurrent layer is 0 or subnormal in float32."""
    return _underflow_flags([[h] for h in trace.hidden])


def hidden_norms(trace: Trace) -> torch.Tensor:
    """Mean over the batch of ||h_t|| for t = 1..T."""
    return torch.stack([h.detach().norm(dim=1).mean() for h in trace.hidden])


def gate_statistics(trace: Trace, threshold: float) -> dict[str, torch.Tensor]:
    """Per gate and time step: saturated share (sigma' < threshold/4) and mean gate value."""
    out: dict[str, torch.Tensor] = {}
    for gate, values in trace.gates.items():
        with torch.no_grad():
            g = torch.stack(values)  # (T, B, H)
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
    """Measures a probe step in two halves: after backward (gradients, activations, dead units
    on the probe set) and after the optimizer step (update ratio). Rows accumulate as plain
    tuples.

    Dead units: ``dead_frac`` is the share of a layer's units dead (``dead_units``) on the
    probe set at the step; ``died_frac`` the share of the layer's units dead at the step that
    were not dead at step 0 (so step 0's ``dead_frac`` is the share dead at initialization, and
    ``dead_frac - died_frac`` the share dead since then). Both need a trace to measure them
    on: the loop passes the fixed probe set's (``probe_set_trace``) for feed-forward models and
    the probed batch's own for recurrent ones.
    """

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
        self._weight_norms: dict[int, torch.Tensor] = {}
        self._trace: Optional[Trace] = None
        self._dead_at_start: dict[int, torch.Tensor] = {}
        self._first_dead_step: Optional[int] = None

    def wants(self, step: int) -> bool:
        """Whether ``step`` is on the schedule."""
        return step in self.steps

    @property
    def underflow_probes(self) -> int:
        """Probed (step, layer) and (step, t) entries whose gradient underflowed float32."""
        return (sum(1 for *_, q, v in self.layer_rows if q == Underflow.name and v == 1.0)
                + sum(1 for _, _, q, v in self.timestep_rows if q == Underflow.name and v == 1.0))

    def after_backward(self, trace: Trace, probe_set: Optional[Trace] = None, step: int = 0) -> None:
        """Measure gradients and activations of the traced step, before clipping.

        Args:
            trace: the traced training batch, after backward.
            probe_set: the traced forward pass of the probe set on the same weights
                (``probe_set_trace``); without it no dead units are measured.
            step: the step being probed (the first step measured with a probe set is the
                reference of ``died_frac``).
        """
        self._trace = trace
        self._pending = []
        self._weight_norms = {}
        with torch.no_grad(), _shared_squares():
            measured = [quantity.measure_all(trace.layers) for quantity in self.quantities]
            for index, layer in enumerate(trace.layers):
                for quantity, values in zip(self.quantities, measured):
                    value = values[index]
                    if value is not None:
                        self._pending.append((index, layer.name, quantity.name, value))
                        if type(quantity) is WeightNorm:
                            self._weight_norms[index] = value
            if probe_set is not None:
                self._measure_dead(probe_set, step)
            self._series = {}
            if trace.hidden:
                self._series["hidden_grad_norm"] = hidden_grad_norms(trace)
                self._series[Underflow.name] = hidden_underflow(trace)
                self._series["hidden_norm"] = hidden_norms(trace)
                self._series.update(gate_statistics(trace, self.cfg.saturation))
            self._before = [[w.detach().clone() for w in layer.weights] for layer in trace.layers]

    def _measure_dead(self, probe_set: Trace, step: int) -> None:
        if self._first_dead_step is None:
            self._first_dead_step = step
        for index, layer in enumerate(probe_set.layers):
            dead = dead_units(layer)
            if dead is None:
                continue
            if step == self._first_dead_step:
                self._dead_at_start[index] = dead
            self._pending.append((index, layer.name, "dead_frac", dead.double().mean()))
            start = self._dead_at_start.get(index)
            if start is not None:
                self._pending.append((index, layer.name, "died_frac", (dead & ~start).double().mean()))

    def after_update(self, step: int, updates: Optional[dict[torch.Tensor, torch.Tensor]] = None) -> None:
        """Add the update ratio ||dW|| / ||W_old|| (float64) and commit the step's rows.

        Args:
            step: the probed step.
            updates: per parameter, the update the optimizer applied, in float64 (what
                ``optim.Optimizer.step(report=True)`` returns). Without it the update is the
                difference of the stored weights, which float32 rounds to 0 for updates below
                ~6e-8 of the weights.
        """
        assert self._trace is not None, "after_backward must come first"
        layers = self._trace.layers
        if not layers:
            self.commit(step)
            return
        with torch.no_grad():
            if updates is not None:
                zero = {id(w): torch.zeros_like(w, dtype=torch.float64) for layer in layers for w in layer.weights
                        if w not in updates}
                deltas = iter([updates[w] if w in updates else zero[id(w)] for layer in layers for w in layer.weights])
            else:
                # One foreach subtraction for every weight matrix (the same elementwise W - W_old).
                deltas = iter(torch._foreach_sub([w for layer in layers for w in layer.weights],
                                                 [b for before in self._before for b in before]))
            delta_norms = _stacked_norms([[next(deltas) for _ in before] for before in self._before])
            # ||W_old|| is the weight_norm measured after backward, on the same weights.
            old_norms = torch.stack([self._weight_norms[i] if i in self._weight_norms else _stacked_norm(before)
                                     for i, before in enumerate(self._before)])
            ratios = (delta_norms / old_norms).unbind()
            for index, (layer, ratio) in enumerate(zip(layers, ratios)):
                self._pending.append((index, layer.name, "update_ratio", ratio))
        self.commit(step)

    def commit(self, step: int) -> None:
        """Move the pending values to the host (one transfer) and append them as rows."""
        names = list(self._series)
        scalars, series = _to_host_float64([v for *_, v in self._pending], [self._series[n] for n in names])
        for (index, name, quantity, _), value in zip(self._pending, scalars):
            self.layer_rows.append((step, index, name, quantity, value))
        for quantity, values in zip(names, series):
            for t, value in enumerate(values, start=1):
                self.timestep_rows.append((step, t, quantity, value))
        self._pending, self._series, self._before, self._trace, self._weight_norms = [], {}, [], None, {}


@torch.no_grad()
def _to_host_float64(
    scalars: list[torch.Tensor], series: list[torch.Tensor]
) -> tuple[list[float], list[list[float]]]:
    """0-d ``scalars`` and 1-d ``series`` as Python floats, in one device-to-host transfer.

    Tensors of one dtype are stacked (or concatenated) and converted to float64 together,
    which gives the same values as converting each one: the conversion is exact and
    elementwise.
    """
    parts: list[torch.Tensor] = []
    slots: list[tuple[bool, int]] = []  # (is_series, index) in the order of the transfer
    for is_series, tensors, join in ((False, scalars, torch.stack), (True, series, torch.cat)):
        by_dtype: dict[torch.dtype, list[int]] = {}
        for i, t in enumerate(tensors):
            by_dtype.setdefault(t.dtype, []).append(i)
        for members in by_dtype.values():
            parts.append(join([tensors[i] for i in members]).double())
            slots.extend((is_series, i) for i in members)
    if not parts:
        return [], []
    flat = (parts[0] if len(parts) == 1 else torch.cat(parts)).cpu().tolist()
    scalar_values: list[float] = [0.0] * len(scalars)
    series_values: list[list[float]] = [[] for _ in series]
    offset = 0
    for is_series, i in slots:
        if is_series:
            size = series[i].numel()
            series_values[i] = flat[offset : offset + size]
            offset += size
        else:
            scalar_values[i] = flat[offset]
            offset += 1
    return scalar_values, series_values

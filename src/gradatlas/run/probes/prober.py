"""The Prober: measures every registered quantity on its schedule and keeps the rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from gradatlas.run.config import ProbeConfig
from gradatlas.run.models import Trace
from gradatlas.run.probes.quantity import (
    LAYERS,
    TIMESTEPS,
    Measured,
    ProbeSetQuantity,
    Quantity,
    Stage,
    TwoStepQuantity,
    registered,
)
from gradatlas.run.probes.schedule import SCHEDULES, probe_schedule
from gradatlas.run.probes.step import ProbeStep
from gradatlas.run.probes.tensors import to_host_float64

UNDERFLOW = "underflow"


def recorded_steps(cfg: ProbeConfig, total_steps: int) -> dict[tuple[str, str], set[int]]:
    """Per quantity (table, name; a gate quantity by its name without the gate), the steps a
    run of ``total_steps`` steps probed as ``cfg`` says measures it at, where it applies."""
    steps = probe_schedule(cfg, total_steps)
    return {(cls.table, cls.name): SCHEDULES[cls.steps](cfg, total_steps) & steps if cls.is_on(cfg) else set()
            for cls in registered()}


@dataclass
class Prober:
    """Measures a probe step in two halves: after backward (``after_backward``: gradients,
    activations, dead units on the probe set) and after the optimizer step (``after_update``:
    the update ratio), then commits the step's rows, as plain tuples, in one host transfer.

    Each quantity (``registered()``) is measured at the steps of its schedule
    (``quantity.steps``, a name in ``schedule.SCHEDULES``); ``steps`` is the probe schedule,
    which holds every quantity's steps.
    """

    cfg: ProbeConfig
    total_steps: int
    layer_rows: list[tuple[int, int, str, str, float]] = field(default_factory=list)
    timestep_rows: list[tuple[int, int, str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.steps = probe_schedule(self.cfg, self.total_steps)
        self.quantities: list[Quantity] = [cls.from_config(self.cfg) for cls in registered() if cls.is_on(self.cfg)]
        schedules = {name: SCHEDULES[name](self.cfg, self.total_steps) & self.steps
                     for name in {quantity.steps for quantity in self.quantities}}
        self.schedule_of = {id(quantity): schedules[quantity.steps] for quantity in self.quantities}
        self._step: Optional[ProbeStep] = None
        self._measured: list[Measured] = []

    def wants(self, step: int) -> bool:
        """Whether ``step`` is on the schedule."""
        return step in self.steps

    def wants_probe_set(self, step: int) -> bool:
        """Whether a quantity measured on the probe set is measured at ``step``."""
        return any(isinstance(q, ProbeSetQuantity) and step in self.schedule_of[id(q)] for q in self.quantities)

    def wants_input_grads(self, step: int) -> bool:
        """Whether a quantity that reads the arc's input gradients is measured at ``step``."""
        return any(q.reads_input_grads and step in self.schedule_of[id(q)] for q in self.quantities)

    def _due(self, step: int, stage: Stage) -> list[Quantity]:
        return [q for q in self.quantities if q.stage is stage and step in self.schedule_of[id(q)]]

    @property
    def underflow_probes(self) -> int:
        """Probed (step, layer) and (step, t) entries whose gradient underflowed float32."""
        return (sum(1 for *_, q, v in self.layer_rows if q == UNDERFLOW and v == 1.0)
                + sum(1 for _, _, q, v in self.timestep_rows if q == UNDERFLOW and v == 1.0))

    def after_backward(self, trace: Trace, probe_set: Optional[Trace] = None, step: int = 0,
                       input_grads: Optional[torch.Tensor] = None) -> None:
        """Measure gradients and activations of the traced step, before clipping.

        Args:
            trace: the traced training batch, after backward.
            probe_set: the traced forward pass of the probe set on the same weights
                (``probe_set_trace``); without it no probe-set quantity is measured.
            step: the step being probed (the first step measured with a probe set is the
                reference of ``died_frac``).
            input_grads: the input gradients along the arc (``probes.arc``), where
                ``wants_input_grads(step)``.
        """
        self._step = ProbeStep(step, trace, probe_set, input_grads=input_grads)
        self._measured = []
        with torch.no_grad():
            for quantity in self._due(step, Stage.BACKWARD):
                self._measured.extend(quantity.measure(self._step))
            for quantity in self._due(step, Stage.UPDATE):
                if isinstance(quantity, TwoStepQuantity):
                    quantity.before_update(self._step)

    def after_update(self, step: int, updates: Optional[dict[torch.Tensor, torch.Tensor]] = None) -> None:
        """Measure the quantities of the optimizer step and commit the step's rows.

        Args:
            step: the probed step.
            updates: per parameter, the update the optimizer applied, in float64 (what
                ``optim.Optimizer.step(report=True)`` returns). Without it the update is the
                difference of the stored weights.
        """
        assert self._step is not None, "after_backward must come first"
        self._step.updates = updates
        with torch.no_grad():
            for quantity in self._due(step, Stage.UPDATE):
                self._measured.extend(quantity.measure(self._step))
        self.commit(step)

    def commit(self, step: int) -> None:
        """Move the measured values to the host (one transfer) and append them as rows."""
        measured = sorted(self._measured, key=lambda m: (m.group, m.member, m.order))
        layers = [m for m in measured if m.table == LAYERS]
        series = [m for m in measured if m.table == TIMESTEPS]
        scalars, values = to_host_float64([m.value for m in layers], [m.value for m in series])
        for m, value in zip(layers, scalars):
            self.layer_rows.append((step, m.member, m.layer, m.quantity, value))
        for m, steps in zip(series, values):
            for t, value in enumerate(steps, start=1):
                self.timestep_rows.append((step, t, m.quantity, value))
        self._measured, self._step = [], None

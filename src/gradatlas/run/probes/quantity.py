"""What a recorded quantity is, and the registry of them.

One quantity, one class (after Cockpit's design), in a module of its own under
``gradatlas.run.probes.quantities``: every module there is imported by ``registered()``, and
its ``@register`` classes are the quantities recorded. A class declares

- ``name``: the ``quantity`` column of its rows (a gate quantity records ``name.gate``);
- its table and what it reads, by its base class: ``LayerQuantity`` (the traced batch, one
  row per layer), ``ProbeSetQuantity`` (the probe set's trace, one row per layer),
  ``TwoStepQuantity`` (both sides of the optimizer step, one row per layer),
  ``TimestepQuantity`` (the top recurrent layer, one row per time step) and
  ``GateQuantity`` (one row per gate and time step);
- ``steps``: the schedule it is measured at (a name in ``schedule.SCHEDULES``);
- ``order``: its place among the rows of one layer (or gate) of its group;
- ``switch``: for an opt-in quantity, the ``ProbeConfig`` switch (of ``config.OPT_IN_PROBES``)
  that turns it on; None (the default) for a quantity every probed run records.

Rows are written group by group (``LayerGroup``, ``TimestepGroup``), within a group layer by layer (gate by gate),
within a layer by ``order``.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass
from typing import ClassVar, NamedTuple, Optional

import torch

from gradatlas.run.config import OPT_IN_PROBES, ProbeConfig
from gradatlas.run.models import LayerTrace, Trace
from gradatlas.run.probes.schedule import EVERY_PROBE
from gradatlas.run.probes.step import ProbeStep

LAYERS, TIMESTEPS = "layers", "timesteps"


class LayerGroup(enum.IntEnum):
    """The groups of a probe step's rows in the layers table, in the order they are written."""

    BATCH = 0  # measured on the traced batch after backward
    PROBE_SET = 1  # measured on the probe set's trace
    UPDATE = 2  # measured around the optimizer step
    EXAMPLES = 3  # one row per example of the traced batch (opt-in quantities)


class TimestepGroup(enum.IntEnum):
    """The groups of a probe step's rows in the timesteps table, in the order they are written."""

    HIDDEN = 0  # one series of the top recurrent layer
    GATES = 1  # one series per gate


class Stage(enum.Enum):
    """When a quantity's value is complete: after backward, or after the optimizer step."""

    BACKWARD = "backward"
    UPDATE = "update"


class Measured(NamedTuple):
    """One measured value before it becomes a row: ``member`` is the layer index (a layer
    quantity) or the gate's position (a gate quantity); ``value`` is 0-d for the layers table,
    1-d (t = 1..T) for the timesteps table."""

    table: str
    group: int
    member: int
    order: int
    layer: str
    quantity: str
    value: torch.Tensor


class Quantity:
    """A recorded quantity; subclasses set the class attributes and implement ``measure``."""

    name: ClassVar[str] = ""
    table: ClassVar[str] = LAYERS
    group: ClassVar[int] = LayerGroup.BATCH
    stage: ClassVar[Stage] = Stage.BACKWARD
    steps: ClassVar[str] = EVERY_PROBE
    order: ClassVar[int] = 0
    switch: ClassVar[Optional[str]] = None
    reads_input_grads: ClassVar[bool] = False  # reads ProbeStep.input_grads (the arc's, probes.arc)

    @classmethod
    def is_on(cls, cfg: ProbeConfig) -> bool:
        """Whether runs of ``cfg`` record the quantity (an opt-in one only where its switch is on)."""
        return cls.switch is None or bool(getattr(cfg, cls.switch))

    @classmethod
    def from_config(cls, cfg: ProbeConfig) -> "Quantity":
        """The quantity as ``cfg`` sets it up (a threshold, say); most take no setting."""
        return cls()

    def measure(self, step: ProbeStep) -> list[Measured]:
        """The quantity's values at ``step`` (after its ``stage``); none where it does not apply."""
        raise NotImplementedError


@dataclass
class SaturationThreshold:
    """For the saturation quantities (of layers and of gates): ``probe.saturation``, the
    slope below which a unit counts as saturated, relative to sup|phi'|."""

    threshold: float = ProbeConfig.saturation

    @classmethod
    def from_config(cls, cfg: ProbeConfig) -> "SaturationThreshold":
        """The quantity with the config's saturation threshold."""
        return cls(cfg.saturation)


class LayerQuantity(Quantity):
    """A per-layer statistic of the traced batch after backward: ``measure_layer`` maps one
    ``LayerTrace`` to a 0-d tensor, or None where it does not apply. ``measure_layers`` may
    share elementwise work between layers, as long as every value stays what
    ``measure_layer`` gives."""

    def trace(self, step: ProbeStep) -> Optional[Trace]:
        """The trace the quantity reads."""
        return step.batch

    def measure_layer(self, layer: LayerTrace, step: ProbeStep) -> Optional[torch.Tensor]:
        """The statistic of ``layer``, or None if not applicable."""
        raise NotImplementedError

    def measure_layers(self, layers: list[LayerTrace], step: ProbeStep) -> list[Optional[torch.Tensor]]:
        """``measure_layer`` of every layer, in order."""
        return [self.measure_layer(layer, step) for layer in layers]

    def measure(self, step):
        trace = self.trace(step)
        if trace is None:
            return []
        values = self.measure_layers(trace.layers, step)
        return [Measured(self.table, self.group, index, self.order, layer.name, self.name, value)
                for index, (layer, value) in enumerate(zip(trace.layers, values)) if value is not None]


class ProbeSetQuantity(LayerQuantity):
    """A per-layer statistic of the probe set's trace (measured only where one is given)."""

    group = LayerGroup.PROBE_SET

    def trace(self, step):
        return step.probe_set


class TwoStepQuantity(LayerQuantity):
    """A per-layer statistic of the optimizer step: ``before_update`` keeps what it needs of
    the weights after backward (in the ``ProbeStep``), ``measure_layers`` runs after the step."""

    group = LayerGroup.UPDATE
    stage = Stage.UPDATE

    def before_update(self, step: ProbeStep) -> None:
        """Keep what the measurement after the update needs; nothing by default."""


class TimestepQuantity(Quantity):
    """A series over t = 1..T of the top recurrent layer (models without time steps have none):
    ``measure_series`` maps the ``ProbeStep`` to a 1-d tensor."""

    table = TIMESTEPS
    group = TimestepGroup.HIDDEN

    def measure_series(self, step: ProbeStep) -> torch.Tensor:
        """The series t = 1..T."""
        raise NotImplementedError

    def measure(self, step):
        if not step.batch.hidden:
            return []
        return [Measured(self.table, self.group, 0, self.order, "", self.name, self.measure_series(step))]


class GateQuantity(TimestepQuantity):
    """A series over t = 1..T per gate of the top recurrent layer, recorded as ``name.gate``:
    ``measure_gate`` maps the gate's values (T, B, H) to the series."""

    group = TimestepGroup.GATES

    def measure_gate(self, values: torch.Tensor) -> torch.Tensor:
        """The series of one gate, from its values stacked over time (T, B, H)."""
        raise NotImplementedError

    def measure(self, step):
        if not step.batch.hidden:
            return []
        return [Measured(self.table, self.group, position, self.order, "", f"{self.name}.{gate}",
                         self.measure_gate(stacked_gate(step, gate)))
                for position, gate in enumerate(step.batch.gates)]


def stacked_gate(step: ProbeStep, gate: str) -> torch.Tensor:
    """The gate's values of the probe step stacked over time (T, B, H), once per step."""

    def stack() -> torch.Tensor:
        with torch.no_grad():
            return torch.stack(step.batch.gates[gate])

    return step.shared(("gate", gate), stack)


_REGISTRY: dict[tuple[str, str], type[Quantity]] = {}


def register(cls: type[Quantity]) -> type[Quantity]:
    """Class decorator: record ``cls`` as a quantity (its table and name must be new)."""
    key = (cls.table, cls.name)
    if not cls.name:
        raise TypeError(f"{cls.__name__} has no name")
    if cls.switch is not None and cls.switch not in OPT_IN_PROBES:
        raise TypeError(f"{cls.__name__}: switch {cls.switch!r} is not one of config.OPT_IN_PROBES")
    if key in _REGISTRY and _REGISTRY[key] is not cls:
        raise TypeError(f"two quantities named {cls.name!r} in the {cls.table} table: "
                        f"{_REGISTRY[key].__name__} and {cls.__name__}")
    _REGISTRY[key] = cls
    return cls


def registered() -> list[type[Quantity]]:
    """Every quantity of ``gradatlas.run.probes.quantities``, in row order (table, group, order)."""
    importlib.import_module("gradatlas.run.probes.quantities")
    return sorted(_REGISTRY.values(), key=lambda cls: (cls.table, cls.group, cls.order, cls.name))

"""dead_frac: the share of a layer's units dead on the probe set."""

import torch

from gradatlas.run.probes.quantity import ProbeSetQuantity, register
from gradatlas.run.probes.schedule import PROBE_SET
from gradatlas.run.probes.slopes import dead_units
from gradatlas.run.probes.step import ProbeStep
from gradatlas.run.probes.tensors import shares


def probe_set_dead_units(step: ProbeStep) -> list:
    """Per layer of the probe set's trace, its dead units (``slopes.dead_units``) or None;
    once per probe step (dead_frac and died_frac read them)."""
    assert step.probe_set is not None
    layers = step.probe_set.layers
    return step.shared("dead_units", lambda: [dead_units(layer) for layer in layers])


@register
class DeadFrac(ProbeSetQuantity):
    """Share of the layer's units dead (``slopes.dead_units``: |phi'(z)| below its activation's dead slope for
    every example) on the probe set at the step. The loop passes the fixed probe set's trace
    (``probe_set_trace``) for feed-forward models and the probed batch's own for recurrent ones."""

    name = "dead_frac"
    order = 10
    steps = PROBE_SET

    def measure_layers(self, layers, step):
        return shares(probe_set_dead_units(step), torch.float64)

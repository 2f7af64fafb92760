"""died_frac: the share of a layer's units dead at the step that were alive at the first one."""

from typing import Optional

import torch

from gradatlas.run.probes.quantities.dead_frac import probe_set_dead_units
from gradatlas.run.probes.quantity import ProbeSetQuantity, register
from gradatlas.run.probes.schedule import PROBE_SET
from gradatlas.run.probes.tensors import shares


@register
class DiedFrac(ProbeSetQuantity):
    """Share of the layer's units dead at the step (as for ``dead_frac``) that were not dead at
    the first step measured on a probe set (step 0 of a run): step 0's ``dead_frac`` is the
    share dead at initialization, and ``dead_frac - died_frac`` the share dead since then.

    The object holds the run's reference: the dead units of every layer at that first step.
    """

    name = "died_frac"
    order = 20
    steps = PROBE_SET

    def __init__(self) -> None:
        self.first_step: Optional[int] = None
        self.dead_at_start: dict[int, torch.Tensor] = {}

    def measure_layers(self, layers, step):
        if self.first_step is None:
            self.first_step = step.step
        died: list[Optional[torch.Tensor]] = []
        for index, dead in enumerate(probe_set_dead_units(step)):
            if dead is not None and step.step == self.first_step:
                self.dead_at_start[index] = dead
            start = self.dead_at_start.get(index)
            died.append(None if dead is None or start is None else dead & ~start)
        return shares(died, torch.float64)

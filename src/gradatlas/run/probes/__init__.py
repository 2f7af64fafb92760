"""Gradient and activation statistics of the probe steps, one quantity per class (after
Cockpit's design).

- ``quantity``: what a quantity is (its table, what it reads, its schedule, its row order)
  and the registry; ``quantities/``: one module per recorded quantity;
- ``step``: one probe step's inputs and the intermediate results its quantities share;
- ``schedule``: the named schedules of probe steps; ``probe_set``: the probe set's trace;
- ``slopes``: small slopes and dead units; ``tensors``: float64 norms, one host transfer;
- ``prober``: the ``Prober`` that measures them all and keeps the rows.

All values stay on the device until a probe step is finished, then move to the host in one
transfer.
"""

from gradatlas.run.probes.probe_set import PROBE_SET_SIZE, probe_set_trace
from gradatlas.run.probes.prober import Prober, recorded_steps
from gradatlas.run.probes.quantity import registered
from gradatlas.run.probes.schedule import SCHEDULES, probe_schedule, probe_set_schedule
from gradatlas.run.probes.slopes import DEAD_SLOPE_ABSOLUTE, DEAD_SLOPE_SHARE, dead_slope, dead_units, largest_slope
from gradatlas.run.probes.tensors import FLOAT32_TINY

__all__ = ["DEAD_SLOPE_ABSOLUTE", "DEAD_SLOPE_SHARE", "FLOAT32_TINY", "PROBE_SET_SIZE", "SCHEDULES", "Prober", "dead_slope", "dead_units",
           "largest_slope", "probe_schedule", "probe_set_schedule", "probe_set_trace", "recorded_steps", "registered"]

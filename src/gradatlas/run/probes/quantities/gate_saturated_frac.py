"""saturated_frac.<gate>: the share of saturated gate units, per gate and time step."""

from dataclasses import dataclass

from gradatlas.run.probes.quantity import GateQuantity, SaturationThreshold, register

# sup sigma' = sigma'(0) = 1/4: the gates are sigmoids.
SIGMOID_MAX_SLOPE = 0.25


@register
@dataclass
class GateSaturatedFrac(SaturationThreshold, GateQuantity):
    """Per gate and t: the share of (example, unit) pairs with sigma' = g (1 - g) below
    threshold * 1/4 (the layer saturation's threshold, relative to sup sigma')."""

    name = "saturated_frac"
    order = 10

    def measure_gate(self, values):
        return (values * (1 - values) < self.threshold * SIGMOID_MAX_SLOPE).float().mean(dim=(1, 2))

"""gate_mean.<gate>: the mean gate value, per gate and time step."""

from gradatlas.run.probes.quantity import GateQuantity, register


@register
class GateMean(GateQuantity):
    """Per gate and t: the mean of the gate's values over examples and units."""

    name = "gate_mean"
    order = 20

    def measure_gate(self, values):
        return values.mean(dim=(1, 2))

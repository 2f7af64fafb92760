"""saturated_frac: the share of a layer's (example, unit) pairs with a small slope."""

from dataclasses import dataclass

import torch

from gradatlas.run.probes.quantity import LayerQuantity, SaturationThreshold, register
from gradatlas.run.probes.slopes import NONNEGATIVE_SLOPE
from gradatlas.run.probes.tensors import shares


@register
@dataclass
class SaturatedFrac(SaturationThreshold, LayerQuantity):
    """Share of (example, unit) pairs where |phi'(z)| < threshold * sup|phi'|.

    One relative threshold serves all activations: with 0.1 a sigmoid unit is saturated
    beyond |z| ~ 3.6 and a tanh unit beyond |z| ~ 1.8; a ReLU unit with z < 0 counts as
    saturated (zero slope). For gated recurrent cells it is measured on the sigmoid gates.
    """

    name = "saturated_frac"
    order = 50

    def _saturated(self, layer):
        if layer.act_input is None or layer.activation is None:
            return None
        slope = layer.activation.derivative(layer.act_input.detach())
        if type(layer.activation) not in NONNEGATIVE_SLOPE:
            slope = slope.abs()  # |x| = x where x >= 0, so skipping it changes no comparison
        return slope < self.threshold * layer.activation.max_slope

    def measure_layer(self, layer, step):
        saturated = self._saturated(layer)
        return None if saturated is None else saturated.float().mean()

    def measure_layers(self, layers, step):
        return shares([self._saturated(layer) for layer in layers], torch.float32)

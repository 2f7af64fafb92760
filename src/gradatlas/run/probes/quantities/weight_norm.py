"""weight_norm: the Frobenius norm of a layer's weights."""

from gradatlas.run.probes.quantity import LayerQuantity, register
from gradatlas.run.probes.step import ProbeStep
from gradatlas.run.probes.tensors import stacked_norms


def weight_norms(step: ProbeStep) -> list:
    """Per layer of the traced batch, the norm of its weights (all matrices together), float64;
    once per probe step (the update ratio divides by it)."""
    layers = step.batch.layers
    return step.shared("weight_norms",
                       lambda: list(stacked_norms([layer.weights for layer in layers]).unbind()) if layers else [])


@register
class WeightNorm(LayerQuantity):
    """Frobenius norm of the layer's weights (all its weight matrices together), float64."""

    name = "weight_norm"
    order = 60

    def measure_layer(self, layer, step):
        return stacked_norms([layer.weights])[0]

    def measure_layers(self, layers, step):
        return weight_norms(step) if layers is step.batch.layers else super().measure_layers(layers, step)

"""act_mean: the mean of a layer's activation output."""

from gradatlas.run.probes.quantity import LayerQuantity, register


@register
class ActMean(LayerQuantity):
    """Mean of the activation output over examples and units (and time steps)."""

    name = "act_mean"
    order = 30

    def measure_layer(self, layer, step):
        return None if layer.act_output is None else layer.act_output.detach().mean()

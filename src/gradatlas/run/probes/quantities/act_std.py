"""act_std: the standard deviation of a layer's activation output."""

from gradatlas.run.probes.quantity import LayerQuantity, register


@register
class ActStd(LayerQuantity):
    """Standard deviation (population) of the activation output over examples and units."""

    name = "act_std"
    order = 40

    def measure_layer(self, layer, step):
        return None if layer.act_output is None else layer.act_output.detach().std(correction=0)

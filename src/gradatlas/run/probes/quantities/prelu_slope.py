"""prelu_slope: the learned negative slope of a PReLU layer."""

from gradatlas.run.activations import PReLU
from gradatlas.run.probes.quantity import LayerQuantity, register


@register
class PReLUSlope(LayerQuantity):
    """The learned negative slope of a PReLU layer at the probed step (before its update)."""

    name = "prelu_slope"
    order = 70

    def measure_layer(self, layer, step):
        if isinstance(layer.activation, PReLU):
            # A copy: the parameter itself changes in place with the optimizer step, after
            # which the value is read (a view would record the slope one update late).
            return layer.activation.weight.detach().clone().reshape(())
        return None

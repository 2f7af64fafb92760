"""underflow: whether a layer's backpropagated gradient is lost to float32."""

from gradatlas.run.probes.quantity import LayerQuantity, register
from gradatlas.run.probes.tensors import underflow_flags


@register
class Underflow(LayerQuantity):
    """1.0 where the layer's backpropagated gradient dLoss/dz (all its entries; for a recurrent
    layer all h_t) is exactly 0 or subnormal in float32, else 0.0: there the gradient is lost
    to float32, and its norm (computed in float64) is no measurement of the network."""

    name = "underflow"
    order = 80

    def measure_layer(self, layer, step):
        return self.measure_layers([layer], step)[0]

    def measure_layers(self, layers, step):
        return list(underflow_flags([layer.preacts for layer in layers]).unbind())

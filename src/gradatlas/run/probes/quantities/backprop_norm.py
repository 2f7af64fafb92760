"""backprop_norm: the norm of the backpropagated gradient dLoss/dz of a layer.

Normalisation convention: a backpropagated norm is the norm of the gradient of the
*per-example* loss, averaged over the batch. The training loss is a batch mean, so the
autograd gradient of example ``b`` is ``1/B`` of that; multiplying by ``B`` makes the value
independent of the batch size (exact without batch norm, which couples examples).
"""

import torch

from gradatlas.run.probes.quantity import LayerQuantity, register


@register
class BackpropNorm(LayerQuantity):
    """Norm of dLoss/dz for the layer's pre-activation z (per example, batch mean, times B).

    For a recurrent layer the norm runs over all its hidden states h_1..h_T together.
    """

    name = "backprop_norm"
    order = 20

    def measure_layer(self, layer, step):
        return step.per_example_grad_norm(layer.preacts)

    def measure_layers(self, layers, step):
        batches = {layer.preacts[0].shape[0] for layer in layers}
        if len(batches) != 1:
            return super().measure_layers(layers, step)
        # One foreach for all squares and all square roots; the "* B" once for all layers.
        roots = torch._foreach_sqrt([step.per_example_squares(layer.preacts) for layer in layers])
        values = torch.stack([root.mean() for root in roots]) * batches.pop()
        return list(values.unbind())

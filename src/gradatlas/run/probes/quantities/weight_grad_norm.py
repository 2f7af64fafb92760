"""weight_grad_norm: the Frobenius norm of dLoss/dW of a layer, before clipping."""

from typing import Optional

import torch

from gradatlas.run.probes.quantity import LayerQuantity, register
from gradatlas.run.probes.tensors import stacked_norms


@register
class WeightGradNorm(LayerQuantity):
    """Frobenius norm of dLoss/dW (all weight matrices of the layer together), before clipping."""

    name = "weight_grad_norm"
    order = 10

    def measure_layer(self, layer, step):
        return self.measure_layers([layer], step)[0]

    def measure_layers(self, layers, step):
        grads = [[w.grad for w in layer.weights if w.grad is not None] for layer in layers]
        present = [i for i, g in enumerate(grads) if g]
        out: list[Optional[torch.Tensor]] = [None] * len(layers)
        if present:
            for i, norm in zip(present, stacked_norms([grads[i] for i in present]).unbind()):
                out[i] = norm
        return out

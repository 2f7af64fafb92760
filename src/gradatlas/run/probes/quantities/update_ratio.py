"""update_ratio: the size of a layer's optimizer update relative to its weights."""

import torch

from gradatlas.run.probes.quantities.weight_norm import weight_norms
from gradatlas.run.probes.quantity import TwoStepQuantity, register
from gradatlas.run.probes.tensors import stacked_norms

_BEFORE = "update_ratio.weights_before"


@register
class UpdateRatio(TwoStepQuantity):
    """||dW|| / ||W_old|| (float64, all weight matrices of the layer together).

    dW is the update the optimizer reports applying (``optim.Optimizer.step(report=True)``, in
    float64; a weight it does not report was not updated). Without a report it is the
    difference of the weights before and after the step, which float32 rounds to 0 for updates
    below ~6e-8 of the weights. ||W_old|| is the weight_norm measured after backward.
    """

    name = "update_ratio"
    order = 10

    def before_update(self, step):
        step.shared(_BEFORE, lambda: [[w.detach().clone() for w in layer.weights] for layer in step.batch.layers])

    def measure_layers(self, layers, step):
        if not layers:
            return []
        before = step.shared(_BEFORE, lambda: None)
        weights = [w for layer in layers for w in layer.weights]
        if step.updates is not None:
            updates = step.updates
            deltas = iter([updates[w] if w in updates else torch.zeros_like(w, dtype=torch.float64) for w in weights])
        else:
            # One foreach subtraction for every weight matrix (the same elementwise W - W_old).
            deltas = iter(torch._foreach_sub(weights, [b for kept in before for b in kept]))
        delta_norms = stacked_norms([[next(deltas) for _ in layer.weights] for layer in layers])
        return list((delta_norms / torch.stack(weight_norms(step))).unbind())

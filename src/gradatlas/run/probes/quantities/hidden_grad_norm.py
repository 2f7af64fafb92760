"""hidden_grad_norm: the norm of dLoss/dh_t of the top recurrent layer, per time step."""

import torch

from gradatlas.run.probes.quantity import TimestepQuantity, register


@register
class HiddenGradNorm(TimestepQuantity):
    """dLoss/dh_t norm for t = 1..T of the top recurrent layer (per example, batch mean, times
    B: the convention of backprop_norm)."""

    name = "hidden_grad_norm"
    order = 10

    def measure_series(self, step):
        # per_example_grad_norm([h]) for every h, its elementwise steps once for all steps.
        hidden = step.batch.hidden
        batch = hidden[0].shape[0]
        roots = torch._foreach_sqrt(step.example_squares(hidden))
        return torch.stack([root.mean() for root in roots]) * batch

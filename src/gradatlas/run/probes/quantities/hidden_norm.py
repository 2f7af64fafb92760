"""hidden_norm: the norm of the top recurrent layer's hidden state, per time step."""

import torch

from gradatlas.run.probes.quantity import TimestepQuantity, register


@register
class HiddenNorm(TimestepQuantity):
    """Mean over the batch of ||h_t|| for t = 1..T."""

    name = "hidden_norm"
    order = 30

    def measure_series(self, step):
        return torch.stack([h.detach().norm(dim=1).mean() for h in step.batch.hidden])

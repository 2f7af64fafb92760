"""jacobian_sv2: the squared singular values of the hidden-to-hidden Jacobian at initialization.

For an MLP without normalization, ``h_l = phi(z_l)`` with ``z_l = W_l h_{l-1} + b_l``, so the
Jacobian of hidden layer ``l`` with respect to the first hidden layer's output ``h_0`` is,
exactly, the product ``J_l = D_l W_l ... D_1 W_1`` with ``D_l = diag(phi'(z_l))`` (``l``
square ``width x width`` factors). It depends on the input through the ``D_l``: it is formed,
in float64, for each of the first ``probe.jacobian_inputs`` examples of the traced batch.

At layer ``l`` (the depth of the product: every power of two below the number of hidden
layers, and the last hidden layer) the squared singular values of the inputs' Jacobians are
recorded as ``jacobian_sv2.<statistic>``: pooled over the inputs (``inputs x width``
values) their ``mean``, second moment ``moment2``, ``var`` (population variance about the
mean) and ``max``; and ``normalized_var``, each input's variance over its squared mean,
averaged over the inputs. The last is what free probability predicts: the pooled variance
also holds how much the inputs' mean squared singular values differ, a fluctuation of
order ``l / width`` that the wide limit does not have. No minimum and no low quantile: where the product is rank deficient (ReLU switches
off about half of the units of every layer), the small singular values are rounding noise,
which another CPU would not reproduce.
"""

from __future__ import annotations

import torch

from gradatlas.run.probes.quantity import LAYERS, LayerGroup, Measured, Quantity, register
from gradatlas.run.probes.schedule import INIT

STATISTICS = ("mean", "moment2", "var", "normalized_var", "max")


def probed_depths(hidden_layers: int) -> list[int]:
    """The depths ``l`` (factors of the product) recorded for a net of ``hidden_layers``
    hidden layers: the powers of two below it and its last hidden layer, ``hidden_layers - 1``."""
    last = hidden_layers - 1
    depths = {2**j for j in range(max(last, 1).bit_length()) if 2**j < last}
    return sorted(depths | ({last} if last >= 1 else set()))


def sv2_statistics(sv2: torch.Tensor) -> list[torch.Tensor]:
    """``STATISTICS`` of the squared singular values ``sv2`` (inputs, width), as 0-d float64
    tensors in order."""
    pooled = sv2.flatten()
    mean = pooled.mean()
    per_input = sv2.var(dim=1, correction=0) / sv2.mean(dim=1).pow(2)
    return [mean, (pooled * pooled).mean(), (pooled - mean).pow(2).mean(), per_input.mean(), pooled.max()]


@register
class JacobianSpectrum(Quantity):
    """Squared singular values of ``dh_l / dh_0`` at the probed depths of an MLP (no norm
    layers: ``RunConfig`` refuses the probe otherwise), one row per statistic and depth in the
    layers table, at the hidden layer ``l`` the product ends at."""

    name = "jacobian_sv2"
    table = LAYERS
    group = LayerGroup.BATCH
    order = 90
    steps = INIT

    def __init__(self, inputs: int = 0) -> None:
        self.inputs = inputs

    @classmethod
    def from_config(cls, cfg):
        return cls(cfg.jacobian_inputs)

    def measure(self, step):
        hidden = [layer for layer in step.batch.layers if layer.activation is not None]
        depths = probed_depths(len(hidden))
        if self.inputs < 1 or not depths:
            return []
        if any(not layer.name.startswith("hidden.") for layer in hidden):
            raise ValueError("jacobian_sv2 needs the hidden layers of an MLP (hidden.0, hidden.1, ...), "
                             f"got {[layer.name for layer in hidden]}")
        products = {}
        jacobian = None
        for depth in range(1, depths[-1] + 1):
            layer = hidden[depth]
            weight = layer.weights[0].detach().double()
            slopes = layer.activation.derivative(layer.act_input.detach()[: self.inputs].double())
            jacobian = weight if jacobian is None else weight @ jacobian
            jacobian = slopes[..., :, None] * jacobian  # D_l W_l J_{l-1}, one per input
            if depth in depths:
                products[depth] = jacobian
        sv2 = torch.linalg.svdvals(torch.stack([products[d] for d in depths])).pow(2)
        measured = []
        for depth, values in zip(depths, sv2):
            for statistic, value in zip(STATISTICS, sv2_statistics(values)):
                measured.append(Measured(self.table, self.group, depth, self.order, hidden[depth].name,
                                         f"{self.name}.{statistic}", value))
        return measured

"""log_gain_mean, log_gain_var, gain_mean: how the backward pass scales one example's gradient.

The squared backward gain of layer ``l`` for example ``b`` is

    r_lb = ||dLoss/dz_l[b]||^2 / ||dLoss/dout[b]||^2,

the squared gradient at the layer's pre-activation relative to that at the output (the head's
pre-activation), so that the loss's own gradient, which differs from example to example, drops
out: for a ReLU MLP this is the squared norm of the transposed input-output Jacobian of layers
``l`` and above applied to a unit vector (Hanin 2018; Hanin and Nica 2019). The three
quantities are its statistics over the traced batch's examples, in float64: the mean and the
variance (over B, not B - 1) of ``ln r_lb``, and the mean of ``r_lb``. Pooled over the runs of
a cell, their per-run means and variances give the variance over initializations and inputs
together. Measured only where ``probe.backward_gain`` is on, at step 0 (an initialization
statistic; the "backward_gain" schedule); the head (r = 1) has none. A gradient that is exactly
0 gives ``ln r = -inf``, so the statistics of its layer are not finite.
"""

from __future__ import annotations

import torch

from gradatlas.run.probes.quantity import LayerQuantity, register
from gradatlas.run.probes.schedule import BACKWARD_GAIN

HEAD = "head"


def log_gains(step) -> dict[int, torch.Tensor]:
    """Per hidden layer (its index in the trace), ``ln r_lb`` over the batch (float64), once
    per probe step; none for a trace without a head or with several tensors per layer."""

    def compute() -> dict[int, torch.Tensor]:
        layers = step.batch.layers
        if not layers or layers[-1].name != HEAD or any(len(layer.preacts) != 1 for layer in layers):
            return {}
        squares = step.example_squares([layer.preacts[0] for layer in layers])
        top = squares[-1].log()
        return {index: sq.log() - top for index, sq in enumerate(squares[:-1])}

    return step.shared("log_gains", compute)


class _BackwardGain(LayerQuantity):
    steps = BACKWARD_GAIN

    def statistic(self, log_gain: torch.Tensor) -> torch.Tensor:
        """The statistic of one layer's ``ln r`` over the batch."""
        raise NotImplementedError

    def measure_layers(self, layers, step):
        gains = log_gains(step)
        return [self.statistic(gains[index]) if index in gains else None for index in range(len(layers))]


@register
class LogGainMean(_BackwardGain):
    """Batch mean of ln r_lb."""

    name = "log_gain_mean"
    order = 90

    def statistic(self, log_gain):
        return log_gain.mean()


@register
class LogGainVar(_BackwardGain):
    """Batch variance (divided by B) of ln r_lb."""

    name = "log_gain_var"
    order = 91

    def statistic(self, log_gain):
        return log_gain.var(correction=0)


@register
class GainMean(_BackwardGain):
    """Batch mean of r_lb."""

    name = "gain_mean"
    order = 92

    def statistic(self, log_gain):
        return log_gain.exp().mean()

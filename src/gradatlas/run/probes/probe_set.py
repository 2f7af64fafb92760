"""The probe set: a fixed sample of training examples whose traced forward pass the dead units
are measured on."""

from __future__ import annotations

import torch

from gradatlas.run.models import Trace

# This many training examples (all of them if the training set is smaller), drawn once at the
# start of a run and fed through the model on the probe steps that measure on it.
PROBE_SET_SIZE = 1024


@torch.no_grad()
def probe_set_trace(model: torch.nn.Module, x: torch.Tensor) -> Trace:
    """A traced forward pass of the probe set ``x``, leaving the model as it was.

    The model stays in its mode (batch norm in training mode normalizes with the probe set's
    own statistics, as it does with a batch); its buffers (batch norm's running statistics)
    are restored afterwards, so probing does not change training.
    """
    buffers = [(b, b.clone()) for b in model.buffers()]
    trace = Trace()
    model(x, trace)
    for buffer, saved in buffers:
        buffer.copy_(saved)
    return trace

"""The architectures by name, built for one run; ``stack_models`` joins E of them into a stack.

Every model's ``forward(x, trace=None)`` behaves like an ordinary module; given a ``Trace``
it also records, per layer, the tensors the probes need (and asks autograd to keep their
gradients). Each architecture's forward is written once, for a run's model (inputs ``(B, ...)``)
and a stack's (``(E, B, ...)``): what differs between the two is ``gradatlas.run.stacking``'s.

- ``mlp``, ``resmlp``: ``gradatlas.run.feedforward``.
- ``rnn``, ``gru``, ``lstm``: ``gradatlas.run.recurrent``.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from gradatlas.run.config import ModelConfig
from gradatlas.run.data import Dataset
from gradatlas.run.feedforward import MLP, ResMLP
from gradatlas.run.recurrent import Recurrent
from gradatlas.run.stacking import member_trace, stack_models
from gradatlas.run.trace import LayerTrace, Trace

__all__ = ["MODELS", "LayerTrace", "Trace", "make_model", "member_trace", "stack_models"]

MODELS: dict[str, Callable[[Dataset, ModelConfig], nn.Module]] = {
    "mlp": MLP,
    "resmlp": ResMLP,
    "rnn": Recurrent,
    "gru": Recurrent,
    "lstm": Recurrent,
}


def make_model(data: Dataset, cfg: ModelConfig) -> nn.Module:
    """Build model ``cfg.name`` for the given data set (one run's: no member dimension)."""
    if cfg.name not in MODELS:
        raise ValueError(f"unknown model {cfg.name!r}; known: {', '.join(MODELS)}")
    return MODELS[cfg.name](data, cfg)

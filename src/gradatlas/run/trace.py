"""What a traced forward pass exposes to the probes: per layer the tensors they measure, and
for recurrent models the per-step hidden states and gates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import torch
from torch import nn

if TYPE_CHECKING:  # activations imports the stacking, which builds member traces
    from gradatlas.run.activations import Activation


@dataclass
class LayerTrace:
    """What one layer exposes to the probes during a traced forward pass.

    Attributes:
        name: readable layer name.
        weights: the layer's weight matrices (their gradients and norms are measured).
        preacts: tensors whose gradient is the backpropagated signal of the layer
            (``z_l``, or the hidden states ``h_t`` of a recurrent layer); they retain grad.
        act_input: what the activation was applied to (for saturation), or None.
        act_output: the activation's output (for mean, std, dead units), or None.
        activation: the module whose ``derivative`` defines saturation, or None.
    """

    name: str
    weights: list[nn.Parameter]
    preacts: list[torch.Tensor]
    act_input: Optional[torch.Tensor] = None
    act_output: Optional[torch.Tensor] = None
    activation: Optional[Activation] = None


@dataclass
class Trace:
    """Collects ``LayerTrace``s and, for recurrent models, per-step hidden states and gates;
    ``inputs`` is the batch a feed-forward model read, flattened to one vector per example."""

    layers: list[LayerTrace] = field(default_factory=list)
    inputs: Optional[torch.Tensor] = None
    hidden: list[torch.Tensor] = field(default_factory=list)
    gates: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    def add(self, layer: LayerTrace) -> None:
        """Record a layer and keep the gradients of its pre-activations."""
        for tensor in layer.preacts:
            if tensor.requires_grad:
                tensor.retain_grad()
        self.layers.append(layer)

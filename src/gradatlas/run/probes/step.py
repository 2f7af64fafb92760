"""One probe step: the traces it measures and the intermediate results its quantities share.

A ``ProbeStep`` lives from the backward pass of a probed step to the commit of its rows. What
several quantities need (the per-example squared gradient norms of a tensor, the weights'
norms, the dead units of a layer) is computed once per step and held here, never in a
module-global cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional

import torch

from gradatlas.run.models import Trace
from gradatlas.run.probes.tensors import squares


@dataclass
class ProbeStep:
    """The inputs of one probe step and its shared intermediate results.

    Attributes:
        step: the training step being probed.
        batch: the traced training batch, after backward (before clipping).
        probe_set: the traced forward pass the dead units are measured on (the fixed probe
            set, or the batch itself for recurrent models), or None.
        updates: per weight, the float64 update the optimizer applied (``after_update``); None
            before the update, or where the caller gives none.
        input_grads: the input gradients along the arc (``probes.arc``), (P, d), where a
            quantity asked for them at this step; else None.
    """

    step: int
    batch: Trace
    probe_set: Optional[Trace] = None
    updates: Optional[dict[torch.Tensor, torch.Tensor]] = None
    input_grads: Optional[torch.Tensor] = None
    _shared: dict[Hashable, Any] = field(default_factory=dict, repr=False)
    _squares: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, repr=False)

    def shared(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``, evaluated once per probe step for ``key``."""
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]

    def example_squares(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per tensor, the per-example sum of squares of ``tensor.grad`` (batch in dim 0), in
        float64; each tensor's squares are computed once per probe step (the top recurrent
        layer's hidden states feed both its backprop_norm and hidden_grad_norm)."""
        missing: dict[int, torch.Tensor] = {}
        for tensor in tensors:
            hit = self._squares.get(id(tensor))
            if hit is None or hit[0] is not tensor:
                missing[id(tensor)] = tensor
        batch = tensors[0].shape[0] if tensors else 0
        # float64: vanishing gradients reach 1e-25 and their squares underflow float32.
        grads = [(t.grad if t.grad is not None else torch.zeros_like(t)).reshape(batch, -1).double()
                 for t in missing.values()]
        for tensor, sq in zip(missing.values(), squares(grads)):
            self._squares[id(tensor)] = (tensor, sq.sum(dim=1))  # the tensor keeps its id unique
        return [self._squares[id(tensor)][1] for tensor in tensors]

    def per_example_squares(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """Per-example squared norm over all ``tensors`` together (added left to right)."""
        total = None
        for sq in self.example_squares(tensors):
            total = sq if total is None else total + sq
        assert total is not None
        return total

    def per_example_grad_norm(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """Batch-mean of the per-example norm of the gradients held by ``tensors``, times B.

        Each tensor has the batch in dim 0; the per-example norm runs over all other dims and
        over all tensors together.
        """
        return self.per_example_squares(tensors).sqrt().mean() * tensors[0].shape[0]

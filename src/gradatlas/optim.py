"""SGD (with momentum) and Adam, the update rules of ``torch.optim.SGD`` and ``torch.optim.Adam``.

Why not torch.optim itself: the first call into a ``torch.optim`` optimizer imports
``torch._dynamo`` (about 3 s of every training process, more than many quick-scale runs
train), and gradatlas needs none of what that buys. These two classes apply the same
arithmetic in the same order (default arguments: no dampening, no Nesterov, no AMSGrad,
L2 weight decay added to the gradient); ``tests/test_optim.py`` checks them step by step
against torch.optim.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

import torch
from torch import nn

from gradatlas.config import OptimConfig


class Optimizer:
    """The parameters and the learning rate; ``step`` is the rule."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0) -> None:
        self.params = list(params)
        self.lr = lr
        self.weight_decay = weight_decay

    def zero_grad(self) -> None:
        """Drop the gradients (set to None, as torch.optim does by default)."""
        for p in self.params:
            p.grad = None

    def _grads(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Parameters that have a gradient, and the gradients with L2 weight decay added."""
        params = [p for p in self.params if p.grad is not None]
        grads = [p.grad for p in params]
        if self.weight_decay:
            grads = list(torch._foreach_add(grads, params, alpha=self.weight_decay))
        return params, grads

    def step(self, report: bool = False) -> Optional[dict[nn.Parameter, torch.Tensor]]:  # pragma: no cover
        """Update every parameter that has a gradient.

        Args:
            report: also return, per updated parameter, the update (new minus old value) as
                the rule computes it, in float64: the probes divide its norm by the weights'
                norm, and a float32 difference of the stored weights rounds every relative
                update below ~6e-8 to 0.
        """
        raise NotImplementedError


class SGD(Optimizer):
    """p <- p - lr * b, with b <- momentum * b + g (b = g at the first step; b = g without momentum)."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum
        self.buffers: dict[nn.Parameter, torch.Tensor] = {}

    @torch.no_grad()
    def step(self, report: bool = False) -> Optional[dict[nn.Parameter, torch.Tensor]]:
        """One update of every parameter that has a gradient (see ``Optimizer.step``)."""
        params, grads = self._grads()
        if not params:
            return {} if report else None
        if self.momentum:
            directions = []
            for p, g in zip(params, grads):
                buf = self.buffers.get(p)
                if buf is None:
                    buf = self.buffers[p] = torch.clone(g).detach()
                else:
                    buf.mul_(self.momentum).add_(g)
                directions.append(buf)
            grads = directions
        updates = {p: -self.lr * d.double() for p, d in zip(params, grads)} if report else None
        torch._foreach_add_(params, grads, alpha=-self.lr)
        return updates


class Adam(Optimizer):
    """Adam (Kingma & Ba) with torch.optim.Adam's bias correction and placement of eps."""

    def __init__(self, params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.moments: dict[nn.Parameter, tuple[torch.Tensor, torch.Tensor]] = {}
        # Per parameter, as in torch.optim: one without a gradient at a step is not counted.
        self.steps: dict[nn.Parameter, int] = {}

    @torch.no_grad()
    def step(self, report: bool = False) -> Optional[dict[nn.Parameter, torch.Tensor]]:
        """One update of every parameter that has a gradient (see ``Optimizer.step``)."""
        params, grads = self._grads()
        updates: dict[nn.Parameter, torch.Tensor] = {}
        for p, g in zip(params, grads):
            if p not in self.moments:
                self.moments[p] = (torch.zeros_like(p), torch.zeros_like(p))
            exp_avg, exp_avg_sq = self.moments[p]
            count = self.steps[p] = self.steps.get(p, 0) + 1
            exp_avg.lerp_(g, 1 - self.beta1)
            exp_avg_sq.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
            bias_correction1 = 1 - self.beta1 ** count
            bias_correction2_sqrt = (1 - self.beta2 ** count) ** 0.5
            if report:
                denom64 = exp_avg_sq.double().sqrt() / bias_correction2_sqrt + self.eps
                updates[p] = (-self.lr / bias_correction1) * exp_avg.double() / denom64
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
            p.addcdiv_(exp_avg, denom, value=-self.lr / bias_correction1)
        return updates if report else None


# name -> constructor from the optim config.
OPTIMIZERS: dict[str, Callable[[Iterable[nn.Parameter], OptimConfig], Optimizer]] = {
    "sgd": lambda params, c: SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay),
    "adam": lambda params, c: Adam(params, lr=c.lr, weight_decay=c.weight_decay),
}

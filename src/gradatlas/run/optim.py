"""SGD (with momentum) and Adam, the update rules of ``torch.optim.SGD`` and ``torch.optim.Adam``.

Why not torch.optim itself: the first call into a ``torch.optim`` optimizer imports
``torch._dynamo`` (about 3 s of every training process, more than many quick-scale runs
train), and gradatlas needs none of what that buys. These two classes apply the same
arithmetic in the same order (default arguments: no dampening, no Nesterov, no AMSGrad,
L2 weight decay added to the gradient); ``tests/test_optim.py`` checks them step by step
against torch.optim.

Stacks (``gradatlas.run.stacking``): every hyperparameter may be one value per member
(a sequence) instead of one for all; then each parameter has the member dimension first.
Members with equal values update together, through the slices of the stacked tensors, in one
foreach call with the same scalar a run alone uses: every member rounds exactly as it would
alone, and one value for the whole stack is exactly the single-run arithmetic.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional, Union

import torch
from torch import nn

from gradatlas.run.config import OptimConfig
from gradatlas.run.stacking import Hyper, member_groups, member_slices, per_member


class Optimizer:
    """The parameters and the learning rate; ``step`` is the rule."""

    def __init__(self, params: Iterable[nn.Parameter], lr: Hyper, weight_decay: Hyper = 0.0) -> None:
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
        groups = member_groups(self.weight_decay)
        if len(groups) == 1:
            if groups[0][0]:
                grads = list(torch._foreach_add(grads, params, alpha=groups[0][0]))
            return params, grads
        grads = [g.clone() for g in grads]
        for decay, members in groups:
            if decay:
                torch._foreach_add_(member_slices(grads, members), member_slices(params, members), alpha=decay)
        return params, grads

    def reset_members(self, members: list[int]) -> None:
        """Zero the optimizer state of stack members (a frozen member's is never read again)."""

    def _update_scale(self, value: Hyper, like: torch.Tensor) -> Union[float, torch.Tensor]:
        groups = member_groups(value)
        return groups[0][0] if len(groups) == 1 else per_member(value, like)

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

    def __init__(self, params: Iterable[nn.Parameter], lr: Hyper, momentum: Hyper = 0.0,
                 weight_decay: Hyper = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum
        self.buffers: dict[nn.Parameter, torch.Tensor] = {}

    def reset_members(self, members: list[int]) -> None:
        for buf in self.buffers.values():
            buf[members] = 0

    @torch.no_grad()
    def step(self, report: bool = False) -> Optional[dict[nn.Parameter, torch.Tensor]]:
        """One update of every parameter that has a gradient (see ``Optimizer.step``)."""
        params, grads = self._grads()
        if not params:
            return {} if report else None
        momenta = member_groups(self.momentum)
        if any(m for m, _ in momenta):
            directions, fresh = [], set()
            for p, g in zip(params, grads):
                buf = self.buffers.get(p)
                if buf is None:
                    buf = self.buffers[p] = torch.clone(g).detach()
                    fresh.add(id(p))
                directions.append(buf)
            # b <- m b + g, per group of members with one momentum (0 gives b = g exactly).
            kept = [(b, g) for p, b, g in zip(params, directions, grads) if id(p) not in fresh]
            if kept:
                bufs, new = [b for b, _ in kept], [g for _, g in kept]
                for m, members in momenta:
                    torch._foreach_mul_(member_slices(bufs, members), m)
                    torch._foreach_add_(member_slices(bufs, members), member_slices(new, members))
            grads = directions
        updates = {p: -self._update_scale(self.lr, d) * d.double() for p, d in zip(params, grads)} if report else None
        for lr, members in member_groups(self.lr):
            torch._foreach_add_(member_slices(params, members), member_slices(grads, members), alpha=-lr)
        return updates


class Adam(Optimizer):
    """Adam (Kingma & Ba) with torch.optim.Adam's bias correction and placement of eps."""

    def __init__(self, params: Iterable[nn.Parameter], lr: Hyper, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: Hyper = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.moments: dict[nn.Parameter, tuple[torch.Tensor, torch.Tensor]] = {}
        # Per parameter, as in torch.optim: one without a gradient at a step is not counted.
        self.steps: dict[nn.Parameter, int] = {}

    def reset_members(self, members: list[int]) -> None:
        for exp_avg, exp_avg_sq in self.moments.values():
            exp_avg[members] = 0
            exp_avg_sq[members] = 0

    @torch.no_grad()
    def step(self, report: bool = False) -> Optional[dict[nn.Parameter, torch.Tensor]]:
        """One update of every parameter that has a gradient (see ``Optimizer.step``)."""
        params, grads = self._grads()
        updates: dict[nn.Parameter, torch.Tensor] = {}
        rates = member_groups(self.lr)
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
                if len(rates) == 1:
                    scale = -rates[0][0] / bias_correction1
                else:
                    scale = per_member([-lr / bias_correction1 for lr in self.lr], p)
                updates[p] = scale * exp_avg.double() / denom64
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
            for lr, members in rates:
                if members is None:
                    p.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
                else:
                    torch._foreach_addcdiv_(member_slices([p], members), member_slices([exp_avg], members),
                                            member_slices([denom], members), value=-lr / bias_correction1)
        return updates if report else None


# name -> constructor from the optim config (one run).
OPTIMIZERS: dict[str, Callable[[Iterable[nn.Parameter], OptimConfig], Optimizer]] = {
    "sgd": lambda params, c: SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay),
    "adam": lambda params, c: Adam(params, lr=c.lr, weight_decay=c.weight_decay),
}


def stack_optimizer(params: Iterable[nn.Parameter], cfgs: list[OptimConfig]) -> Optimizer:
    """The optimizer of a stack whose member k has optim config ``cfgs[k]`` (one rule for all)."""
    names = {c.name for c in cfgs}
    if len(names) != 1:
        raise ValueError(f"a stack trains with one optimizer, got {sorted(names)}")
    per_member = {key: [getattr(c, key) for c in cfgs] for key in ("lr", "momentum", "weight_decay")}
    if names.pop() == "sgd":
        return SGD(params, **per_member)
    return Adam(params, lr=per_member["lr"], weight_decay=per_member["weight_decay"])

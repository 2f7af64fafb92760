"""Input gradients along an arc through input space, for the shattered-gradients quantity.

Balduzzi et al. (2017) follow the gradient of a network's output with respect to its input
along a line of nearby inputs. Here the points lie on an arc of a great circle through a
training example ``x0``: ``x_s = cos(s a) x0 + sin(s a) ||x0|| u`` for s = 0..ARC_POINTS-1, with
``u`` a random unit vector orthogonal to x0 and ``a = ARC_STEP`` radians. Every point has the
norm of x0 and points s apart make the angle s a, so the input correlation of a pair depends on
its separation alone (for a zero-bias ReLU network, whose input gradient depends only on the
direction of x, a straight line's points give the same gradients as their directions on such
an arc). The output differentiated is the first logit.
"""

from __future__ import annotations

import math

import torch

ARC_POINTS = 33
ARC_STEP = math.pi / 128
# The direction's generator is seeded with the run's seed plus this offset (a generator of its
# own: the batch order and the probe set stay as they were).
ARC_SEED_OFFSET = 2_000_003


def arc_inputs(x0: torch.Tensor, seed: int) -> torch.Tensor:
    """The ``ARC_POINTS`` points of the arc through ``x0`` (a flat input), shape (P, d)."""
    x0 = x0.detach().reshape(-1).double().cpu()
    u = torch.randn(x0.numel(), generator=torch.Generator().manual_seed(seed + ARC_SEED_OFFSET), dtype=torch.float64)
    u = u - (u @ x0) / (x0 @ x0) * x0
    u = u / u.norm() * x0.norm()
    angles = ARC_STEP * torch.arange(ARC_POINTS, dtype=torch.float64)
    return torch.cos(angles)[:, None] * x0 + torch.sin(angles)[:, None] * u


def input_gradients(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """d(logit 0)/dx at every point of ``x`` ((P, d), or (E, P, d) for a stack), leaving the
    parameters' gradients and the buffers (batch norm's running statistics) as they were."""
    buffers = [(b, b.clone()) for b in model.buffers()]
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = model(x)
        (grad,) = torch.autograd.grad(out[..., 0].sum(), x)
    with torch.no_grad():
        for buffer, saved in buffers:
            buffer.copy_(saved)
    return grad.detach()

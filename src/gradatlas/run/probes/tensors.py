"""Float64 tensor helpers the quantities share: norms, underflow flags, one host transfer.

Every helper batches its elementwise steps (squares, square roots, infinity norms) over many
tensors in one ``torch._foreach_*`` call but keeps each tensor's reduction its own, so every
value is bit for bit what the per-tensor computation gives.
"""

from __future__ import annotations

import math

import torch

# The smallest normal float32: a gradient entry below it in magnitude is 0 or subnormal.
FLOAT32_TINY = torch.finfo(torch.float32).tiny


def squares(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """``t.pow(2)`` of every tensor in one foreach multiplication (x * x, as pow(x, 2) is)."""
    return list(torch._foreach_mul(tensors, tensors)) if tensors else []


def stacked_norms(groups: list[list[torch.Tensor]]) -> torch.Tensor:
    """``stacked_norm`` of every (non-empty) group, as one float64 vector.

    Elementwise steps (squares, square roots) run once for all groups; each tensor's sum
    stays its own reduction, so every value equals ``stacked_norm(group)`` bit for bit.
    """
    sums = iter(sq.sum() for sq in squares([t.detach().double() for group in groups for t in group]))
    totals = []
    for group in groups:
        total = next(sums)
        for _ in group[1:]:
            total = total + next(sums)
        totals.append(total)
    return torch.stack(totals).sqrt()


def stacked_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    """sqrt of the sum of squares of all ``tensors``, in float64 (tiny gradients would
    underflow when squared in float32); the squares are added left to right."""
    if not tensors:
        return torch.zeros((), dtype=torch.float64)
    return stacked_norms([tensors])[0]


def underflow_flags(groups: list[list[torch.Tensor]]) -> torch.Tensor:
    """Per group of tensors, 1.0 (float64) where every entry of every tensor's gradient is 0 or
    subnormal in float32, else 0.0; a missing gradient counts as 0. One foreach for all groups."""
    grads = [t.grad.detach() for group in groups for t in group if t.grad is not None]
    if groups and len(grads) == len(groups) and all(sum(t.grad is not None for t in g) == 1 for g in groups):
        # One gradient per group (a layer's z, an h_t): its largest entry is the group's, and one
        # comparison serves all groups (a max over one value and float64 conversion are exact).
        return (torch.stack(torch._foreach_norm(grads, ord=math.inf)).double() < FLOAT32_TINY).double()
    largest = iter(torch._foreach_norm(grads, ord=math.inf)) if grads else iter(())
    maxima = []
    for group in groups:
        present = [next(largest) for t in group if t.grad is not None]
        maxima.append(torch.stack(present).max().double() if present
                      else torch.zeros((), dtype=torch.float64, device=group[0].device))
    return (torch.stack(maxima) < FLOAT32_TINY).double() if maxima else torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def to_host_float64(
    scalars: list[torch.Tensor], series: list[torch.Tensor]
) -> tuple[list[float], list[list[float]]]:
    """0-d ``scalars`` and 1-d ``series`` as Python floats, in one device-to-host transfer.

    Tensors of one dtype are stacked (or concatenated) and converted to float64 together,
    which gives the same values as converting each one: the conversion is exact and
    elementwise.
    """
    parts: list[torch.Tensor] = []
    slots: list[tuple[bool, int]] = []  # (is_series, index) in the order of the transfer
    for is_series, tensors, join in ((False, scalars, torch.stack), (True, series, torch.cat)):
        by_dtype: dict[torch.dtype, list[int]] = {}
        for i, t in enumerate(tensors):
            by_dtype.setdefault(t.dtype, []).append(i)
        for members in by_dtype.values():
            parts.append(join([tensors[i] for i in members]).double())
            slots.extend((is_series, i) for i in members)
    if not parts:
        return [], []
    flat = (parts[0] if len(parts) == 1 else torch.cat(parts)).cpu().tolist()
    scalar_values: list[float] = [0.0] * len(scalars)
    series_values: list[list[float]] = [[] for _ in series]
    offset = 0
    for is_series, i in slots:
        if is_series:
            size = series[i].numel()
            series_values[i] = flat[offset : offset + size]
            offset += size
        else:
            scalar_values[i] = flat[offset]
            offset += 1
    return scalar_values, series_values


# Below this many entries a float sum of 0s and 1s is exact (every partial sum an integer the
# dtype represents exactly), so that its order does not matter.
_EXACT_COUNTS = {torch.float32: 2**24, torch.float64: 2**53}


def shares(masks: list[torch.Tensor | None], dtype: torch.dtype) -> list[torch.Tensor | None]:
    """Per boolean mask (None stays None), the share of its True entries as a 0-d ``dtype``
    tensor: ``mask.to(dtype).mean()``, with masks of one shape stacked into one reduction. The
    sum of 0s and 1s is exact in any order (below 2**24 entries in float32; larger masks are
    reduced alone), so every share is bit for bit the one computed alone."""
    out: list[torch.Tensor | None] = [None] * len(masks)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, mask in enumerate(masks):
        if mask is not None:
            by_shape.setdefault(tuple(mask.shape), []).append(i)
    for shape, members in by_shape.items():
        if len(members) == 1 or not shape or math.prod(shape) >= _EXACT_COUNTS[dtype]:
            for i in members:
                out[i] = masks[i].to(dtype).mean()
            continue
        values = torch.stack([masks[i] for i in members]).to(dtype).mean(dim=tuple(range(1, len(shape) + 1)))
        for i, value in zip(members, values.unbind()):
            out[i] = value
    return out

"""The training loop: minibatch SGD/Adam with optional clipping and probes. No file I/O.

The loop trains a stack (``train_stack``): E same-shaped runs as one network with a leading
member dimension (``stacking.stack_models``); a single run is a stack of one (``train``). Each
member keeps what a run alone has: its data order and probe set (from its own seed), its
optimizer state and hyperparameters, its clipping (a norm per member, never over the stack),
its probes, and its divergence.

A non-finite loss or gradient norm is an outcome, not an error: the member stops (it is
frozen: its weights, gradients and optimizer state are zeroed, so that it computes nothing
non-finite while the others train on), and its result says ``diverged`` with the step. A model whose outputs are not finite has no loss or
metric: they are NaN (never the argmax of NaN outputs), and a run whose final evaluation is
not finite is diverged with every final value NaN.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch import nn

from gradatlas.core.names import RECURRENT_MODELS
from gradatlas.run.config import MEMBER_SETTINGS, RunConfig, stack_key, total_steps
from gradatlas.run.data import Dataset
from gradatlas.run.optim import stack_optimizer
from gradatlas.run.probes import PROBE_SET_SIZE, Prober, probe_set_trace
from gradatlas.run.probes.arc import arc_inputs, input_gradients
from gradatlas.run.stacking import member_count, member_groups, member_trace, stack_models
from gradatlas.run.trace import Trace


def task_loss(data: Dataset, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean loss of a batch: cross-entropy (over every readout step) or MSE."""
    if data.task == "classification":
        return nn.functional.cross_entropy(output.reshape(-1, output.shape[-1]), target.reshape(-1))
    return nn.functional.mse_loss(output, target)


def task_metric(data: Dataset, output: torch.Tensor, target: torch.Tensor) -> float:
    """Accuracy (per readout step) for classification, mean squared error for regression."""
    if data.task == "classification":
        return (output.argmax(dim=-1) == target).float().mean().item()
    return nn.functional.mse_loss(output, target).item()


def clip_gradients(params: list[nn.Parameter], mode: str, value: float, total_norm: torch.Tensor) -> bool:
    """Clip gradients in place; return whether clipping changed them.

    Args:
        params: parameters with gradients.
        mode: ``none``, ``norm`` (rescale to global norm ``value``) or ``value`` (clamp entries).
        value: the threshold.
        total_norm: the global gradient norm, already computed.
    """
    if mode == "none":
        return False
    grads = [p.grad for p in params if p.grad is not None]
    if mode == "norm":
        torch.nn.utils.clip_grads_with_norm_(params, value, total_norm)
        return bool(total_norm > value)
    clipped = any(bool((g.abs() > value).any()) for g in grads)
    torch.nn.utils.clip_grad_value_(params, value)
    return clipped


@dataclass
class TrainingResult:
    """What a run produced, before it is written anywhere."""

    status: str
    diverged_step: Optional[int]
    steps: int
    step_rows: list[dict] = field(default_factory=list)
    layer_rows: list[tuple] = field(default_factory=list)
    timestep_rows: list[tuple] = field(default_factory=list)
    final: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0
    # Probed (step, layer) and (step, t) entries whose gradient underflowed float32.
    underflow_probes: int = 0


@torch.no_grad()
def evaluate(model: nn.Module, data: Dataset, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> tuple[float, float]:
    """Loss and metric on a whole split, in eval mode (batch norm uses running statistics);
    both NaN where any output is not finite (a diverged model has no accuracy)."""
    model.eval()
    outputs = torch.cat([model(x[i : i + batch]) for i in range(0, len(x), batch)])
    model.train()
    if not bool(torch.isfinite(outputs).all()):
        return math.nan, math.nan
    return task_loss(data, outputs, y).item(), task_metric(data, outputs, y)


# The probe set's generator is seeded with seed + this offset: a generator of its own leaves
# the batch order as it was, and the offset keeps it from repeating the first epoch's order.
PROBE_SET_SEED_OFFSET = 1_000_003


def _arc_gradients(model: nn.Module, x_probe: Optional[torch.Tensor], cfgs: list[RunConfig], active: list[int],
                   probers: list[Prober], step: int) -> Optional[torch.Tensor]:
    """Every member's input gradients along its arc (``probes.arc``, through the first example
    of its probe set), (E, P, d), where a member's quantities ask for them at ``step``."""
    if x_probe is None or not any(probers[k].wants_input_grads(step) for k in active):
        return None
    points = torch.stack([arc_inputs(x_probe[k][0], c.seed) for k, c in enumerate(cfgs)])
    return input_gradients(model, points.to(device=x_probe.device, dtype=x_probe.dtype))


def probe_set(x_train: torch.Tensor, seed: int) -> torch.Tensor:
    """The run's probe set: ``PROBE_SET_SIZE`` training examples (all if fewer), drawn once
    at the start of the run; every probe step measures dead units on it."""
    generator = torch.Generator().manual_seed(seed + PROBE_SET_SEED_OFFSET)
    index = torch.randperm(len(x_train), generator=generator)[:PROBE_SET_SIZE].to(x_train.device)
    return x_train[index]



def member_losses(data: Dataset, output: torch.Tensor, target: torch.Tensor) -> list[torch.Tensor]:
    """Each member's batch loss, computed as a run alone computes it (``task_loss``)."""
    return [task_loss(data, output[k], target[k]) for k in range(output.shape[0])]


def member_grad_norms(params: list[nn.Parameter], members: int) -> torch.Tensor:
    """Per member, the global norm of its gradients (float32, as ``get_total_norm`` of the
    member alone gives it): one foreach over every member's slices, then a norm per member."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(members)
    norms = torch._foreach_norm([g[k] for k in range(members) for g in grads], 2.0)
    per = len(grads)
    return torch.stack([torch.linalg.vector_norm(torch.stack(norms[k * per : (k + 1) * per]), 2.0)
                        for k in range(members)])


def clip_members(params: list[nn.Parameter], modes: Sequence[str], values: Sequence[float],
                 norms: torch.Tensor) -> list[bool]:
    """Clip each member's gradients in place as ``clip_gradients`` clips a run alone; return
    per member whether clipping changed them.

    Args:
        params: the stacked parameters (member dimension first).
        modes: per member ``none``, ``norm`` or ``value``.
        values: per member the threshold.
        norms: per member the gradient norm (``member_grad_norms``; 0 for a frozen member).
    """
    grads = [p.grad for p in params if p.grad is not None]
    members = len(modes)
    clipped = torch.zeros(members, dtype=torch.bool, device=norms.device)
    if not grads:
        return clipped.tolist()
    if "norm" in modes:
        limits = torch.tensor([v if m == "norm" else math.inf for m, v in zip(modes, values)],
                              dtype=norms.dtype, device=norms.device)
        # clip_grads_with_norm_'s coefficient, max_norm / (norm + 1e-6), which Python evaluates
        # as reciprocal(norm + 1e-6) * max_norm; exactly 1 for members that do not clip by norm.
        coef = ((norms + 1e-6).reciprocal() * limits).clamp_(max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
        clipped |= norms > limits
    for value, group in member_groups([v if m == "value" else math.nan for m, v in zip(modes, values)]):
        if math.isnan(value):
            continue
        group = list(range(members)) if group is None else group
        slices = [g[k] for g in grads for k in group]
        exceeds = torch.stack([(s.abs() > value).any() for s in slices]).view(len(grads), len(group)).any(dim=0)
        clipped[group] |= exceeds
        torch._foreach_clamp_min_(slices, -value)
        torch._foreach_clamp_max_(slices, value)
    return clipped.tolist()


@torch.no_grad()
def evaluate_stack(model: nn.Module, data: Dataset, x: torch.Tensor, y: torch.Tensor,
                   batch: int = 1000) -> list[tuple[float, float]]:
    """``evaluate`` for every member of a stacked model on one shared split.

    On a CPU a forward pass takes ``batch`` examples in all, ``batch / E`` per member: with
    ``batch`` per member a large stack's input projections are fresh memory mappings at every
    pass, slower per model than its runs one by one (bench/README.md, "Evaluation"). A stack
    of one evaluates as a run alone. With as many examples per member as alone, a member's
    outputs are bitwise its outputs alone; with fewer, matmuls of fewer rows may round
    differently (bench/README.md, "Evaluation", for where they were compared). On a GPU, where
    small passes are launch-bound, a stack evaluates ``batch`` examples per member."""
    model.eval()
    members = member_count(model)
    chunk = batch if x.device.type == "cuda" else max(1, batch // members)
    outputs = torch.cat([model(x[i : i + chunk].unsqueeze(0).expand(members, *x[i : i + chunk].shape))
                         for i in range(0, len(x), chunk)], dim=1)
    model.train()
    finite = torch.isfinite(outputs.flatten(1)).all(dim=1).tolist()
    return [(task_loss(data, outputs[k], y).item(), task_metric(data, outputs[k], y)) if finite[k]
            else (math.nan, math.nan) for k in range(members)]


@torch.no_grad()
def _freeze(model: nn.Module, optimizer, members: list[int]) -> None:
    """Zero the members' weights, gradients, optimizer state and running statistics: a frozen
    member then computes finite zeros, and its update is exactly zero, at every later step."""
    for p in model.parameters():
        p[members] = 0
        if p.grad is not None:
            p.grad[members] = 0
    for name, buffer in model.named_buffers():
        if buffer.dim() and buffer.shape[0] == member_count(model):
            buffer[members] = 1.0 if name.endswith("running_var") else 0.0
    optimizer.reset_members(members)


def train(model: nn.Module, data: Dataset, cfg: RunConfig, device: torch.device) -> TrainingResult:
    """Train ``model`` (a per-run model of ``models.MODELS``) on ``data`` as ``cfg`` says:
    a stack of one (``train_stack``)."""
    return train_stack([model], data, [cfg], device)[0]


def train_stack(models: list[nn.Module], data: Dataset, cfgs: list[RunConfig],
                device: torch.device) -> list[TrainingResult]:
    """Train the runs ``cfgs`` (member k starting from ``models[k]``) as one stack, probing on
    the probe schedule; one result per member, each what the run alone gives up to the
    rounding of batched matmuls.

    Member k's batches are drawn from a generator seeded with ``cfgs[k].seed``, so the same
    stack on the same device gives the same results. The configs must share ``stack_key``.
    """
    start = time.perf_counter()
    keys = {stack_key(cfg) for cfg in cfgs}
    if len(keys) != 1:
        raise ValueError("the runs of a stack must share every setting but "
                         + ", ".join(sorted(MEMBER_SETTINGS)))
    cfg = cfgs[0]
    size = len(cfgs)
    model = stack_models(models).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    by_id = {id(p): p for p in params}
    optimizer = stack_optimizer(params, [c.optim for c in cfgs])
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    batch = cfg.train.batch_size
    per_epoch = len(x_train) // batch
    n_steps = total_steps(cfg, len(x_train))
    probers = [Prober(c.probe, n_steps) for c in cfgs]
    schedule = probers[0]
    orders = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    modes, limits = [c.train.clip for c in cfgs], [c.train.clip_value for c in cfgs]
    # Dead units of feed-forward models are measured on each member's fixed probe set; those of
    # recurrent models on the probed batch itself (all its time steps), as a probe-set forward
    # through every time step would cost several training steps per probe.
    x_probe = (torch.stack([probe_set(x_train, c.seed) for c in cfgs])
               if schedule.steps and cfg.model.name not in RECURRENT_MODELS else None)
    results = [TrainingResult(status="ok", diverged_step=None, steps=n_steps) for _ in cfgs]
    active = list(range(size))

    step = 0
    for epoch in range(cfg.train.epochs):
        perms = torch.stack([torch.randperm(len(x_train), generator=order) for order in orders]).to(device)
        for i in range(per_epoch):
            if step >= n_steps or not active:
                break
            index = perms[:, i * batch : (i + 1) * batch]
            trace = Trace() if schedule.wants(step) else None
            losses = member_losses(data, model(x_train[index], trace), y_train[index])
            optimizer.zero_grad()
            torch.stack(losses).sum().backward()  # d(sum)/d(loss_k) = 1: each member's own gradient
            norms = member_grad_norms(params, size)
            values = torch.cat([torch.stack(losses).detach(), norms]).tolist()  # one transfer
            diverged = []
            for k in active:
                loss_value, norm_value = values[k], values[size + k]
                results[k].step_rows.append(
                    {"step": step, "epoch": epoch, "loss": loss_value, "grad_norm": norm_value,
                     "clipped": False, "lr": cfgs[k].optim.lr, "test_loss": math.nan, "test_metric": math.nan})
                if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
                    results[k].status, results[k].diverged_step = "diverged", step
                    diverged.append(k)
            if diverged:
                _freeze(model, optimizer, diverged)
                active = [k for k in active if k not in diverged]
                norms[diverged] = 0.0
            if not active:
                break
            views: dict[int, dict[int, torch.Tensor]] = {}
            if trace is not None:
                # Dead units with the weights this step's gradients belong to, on the probe set's steps.
                dead_on = trace
                if x_probe is not None:
                    dead_on = probe_set_trace(model, x_probe) if schedule.wants_probe_set(step) else None
                arc = _arc_gradients(model, x_probe, cfgs, active, probers, step)
                for k in active:
                    views[k] = {}
                    probers[k].after_backward(member_trace(trace, k, views[k]),
                                              None if dead_on is None else member_trace(dead_on, k, {}), step,
                                              None if arc is None else arc[k])
            clipped = clip_members(params, modes, limits, norms)
            for k in active:
                results[k].step_rows[-1]["clipped"] = clipped[k]
            updates = optimizer.step(report=trace is not None)
            if trace is not None:
                for k in active:
                    probers[k].after_update(step, {view: updates[by_id[pid]][k] for pid, view in views[k].items()
                                                   if by_id[pid] in updates})
            step += 1
        if not active or step >= n_steps or (epoch + 1) % cfg.train.eval_every == 0:
            evaluated = [k for k in active if results[k].step_rows]
            if evaluated:
                scores = evaluate_stack(model, data, x_test, y_test)
                for k in evaluated:
                    row = results[k].step_rows[-1]
                    row["test_loss"], row["test_metric"] = scores[k]
        if not active or step >= n_steps:
            break

    for result, prober in zip(results, probers):
        result.layer_rows, result.timestep_rows = prober.layer_rows, prober.timestep_rows
        result.underflow_probes = prober.underflow_probes
    if active:
        train_scores = evaluate_stack(model, data, x_train, y_train)
        test_scores = evaluate_stack(model, data, x_test, y_test)
        val_scores = (evaluate_stack(model, data, data.x_val.to(device), data.y_val.to(device))
                      if data.x_val is not None else None)
        for k in active:
            result = results[k]
            (train_loss, train_metric), (test_loss, test_metric) = train_scores[k], test_scores[k]
            result.final = {"train_loss": train_loss, "train_metric": train_metric,
                            "test_loss": test_loss, "test_metric": test_metric}
            if not all(math.isfinite(v) for v in (train_loss, test_loss)):
                # Weights went non-finite through the last update: the run diverged at its end,
                # and none of its final values is defined.
                result.status, result.diverged_step = "diverged", step
                result.final = dict.fromkeys(result.final, math.nan)
            elif val_scores is not None:
                result.final.update(val_loss=val_scores[k][0], val_metric=val_scores[k][1])
    wall = time.perf_counter() - start
    for result in results:
        result.wall_time_s = wall
    return results

"""The training loop: minibatch SGD/Adam with optional clipping and probes. No file I/O.

A non-finite loss or gradient norm is an outcome, not an error: the loop stops, and the
result says ``diverged`` with the step. A model whose outputs are not finite has no loss or
metric: they are NaN (never the argmax of NaN outputs), and a run whose final evaluation is
not finite is diverged with every final value NaN.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from gradatlas.config import RECURRENT_MODELS, RunConfig, total_steps
from gradatlas.data import Dataset
from gradatlas.models import Trace
from gradatlas.optim import OPTIMIZERS
from gradatlas.probes import PROBE_SET_SIZE, Prober, probe_set_trace

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


def probe_set(x_train: torch.Tensor, seed: int) -> torch.Tensor:
    """The run's probe set: ``PROBE_SET_SIZE`` training examples (all if fewer), drawn once
    at the start of the run; every probe step measures dead units on it."""
    generator = torch.Generator().manual_seed(seed + PROBE_SET_SEED_OFFSET)
    index = torch.randperm(len(x_train), generator=generator)[:PROBE_SET_SIZE].to(x_train.device)
    return x_train[index]


def train(model: nn.Module, data: Dataset, cfg: RunConfig, device: torch.device) -> TrainingResult:
    """Train ``model`` on ``data`` as ``cfg`` says, probing on the probe schedule.

    Batches are drawn from a generator seeded with ``cfg.seed``, so the same config and seed
    give the same run on the same device.
    """
    start = time.perf_counter()
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = OPTIMIZERS[cfg.optim.name](params, cfg.optim)
    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    batch = cfg.train.batch_size
    per_epoch = len(x_train) // batch
    n_steps = total_steps(cfg, len(x_train))
    prober = Prober(cfg.probe, n_steps)
    order = torch.Generator().manual_seed(cfg.seed)
    # Dead units of feed-forward models are measured on the fixed probe set; those of recurrent
    # models on the probed batch itself (all its time steps), as a probe-set forward through
    # every time step would cost several training steps per probe.
    x_probe = probe_set(x_train, cfg.seed) if prober.steps and cfg.model.name not in RECURRENT_MODELS else None
    result = TrainingResult(status="ok", diverged_step=None, steps=n_steps)

    step = 0
    for epoch in range(cfg.train.epochs):
        perm = torch.randperm(len(x_train), generator=order).to(device)
        for i in range(per_epoch):
            if step >= n_steps:
                break
            index = perm[i * batch : (i + 1) * batch]
            trace = Trace() if prober.wants(step) else None
            loss = task_loss(data, model(x_train[index], trace), y_train[index])
            optimizer.zero_grad()
            loss.backward()
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            loss_value, norm_value = loss.item(), grad_norm.item()
            row = {"step": step, "epoch": epoch, "loss": loss_value, "grad_norm": norm_value,
                   "clipped": False, "lr": optimizer.lr,
                   "test_loss": math.nan, "test_metric": math.nan}
            result.step_rows.append(row)
            if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
                result.status, result.diverged_step = "diverged", step
                break
            if trace is not None:
                # Dead units with the weights this step's gradients belong to.
                dead_on = probe_set_trace(model, x_probe) if x_probe is not None else trace
                prober.after_backward(trace, dead_on, step)
            row["clipped"] = clip_gradients(params, cfg.train.clip, cfg.train.clip_value, grad_norm)
            updates = optimizer.step(report=trace is not None)
            if trace is not None:
                prober.after_update(step, updates)
            step += 1
        if result.status == "diverged" or step >= n_steps or (epoch + 1) % cfg.train.eval_every == 0:
            if result.status != "diverged" and result.step_rows:
                row = result.step_rows[-1]
                row["test_loss"], row["test_metric"] = evaluate(model, data, x_test, y_test)
        if result.status == "diverged" or step >= n_steps:
            break

    result.layer_rows, result.timestep_rows = prober.layer_rows, prober.timestep_rows
    result.underflow_probes = prober.underflow_probes
    if result.status == "ok":
        train_loss, train_metric = evaluate(model, data, x_train, y_train)
        test_loss, test_metric = evaluate(model, data, x_test, y_test)
        result.final = {"train_loss": train_loss, "train_metric": train_metric,
                        "test_loss": test_loss, "test_metric": test_metric}
        if not all(math.isfinite(v) for v in (train_loss, test_loss)):
            # Weights went non-finite through the last update: the run diverged at its end,
            # and none of its final values is defined.
            result.status, result.diverged_step = "diverged", step
            result.final = dict.fromkeys(result.final, math.nan)
    result.wall_time_s = time.perf_counter() - start
    return result

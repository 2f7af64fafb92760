"""Main's single-run training loop (gradatlas.run.loop.train at commit 3b869c9, before stacks),
kept verbatim as the reference the stacked loop is tested against: it trains the per-run
module through its own ``forward`` with ``torch.nn.utils`` norms and the optimizer of one run."""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from gradatlas.core.names import RECURRENT_MODELS
from gradatlas.run.config import RunConfig, total_steps
from gradatlas.run.data import Dataset
from gradatlas.run.loop import TrainingResult, clip_gradients, evaluate, probe_set, task_loss
from gradatlas.run.models import Trace
from gradatlas.run.optim import OPTIMIZERS
from gradatlas.run.probes import Prober, probe_set_trace


def train_single(model: nn.Module, data: Dataset, cfg: RunConfig, device: torch.device) -> TrainingResult:
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
        elif data.x_val is not None:
            val_loss, val_metric = evaluate(model, data, data.x_val.to(device), data.y_val.to(device))
            result.final.update(val_loss=val_loss, val_metric=val_metric)
    result.wall_time_s = time.perf_counter() - start
    return result

"""Run one validated configuration end to end: seed, build, train, write the run record.

Both the Hydra entry point (``gradatlas.train``) and batch runners call ``run``, so a record
is the same whichever way it was produced.
"""

from __future__ import annotations

import platform
import random
import subprocess
import traceback
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gradatlas import records, rerun
from gradatlas.config import RECURRENT_MODELS, ConfigError, RunConfig, factor_values, fingerprint, to_container
from gradatlas.data import make_dataset
from gradatlas.loop import train
from gradatlas.models import make_model

PACKAGES = ("torch", "numpy", "pandas", "pyarrow", "hydra-core", "omegaconf", "mnist1d")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without one is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available; use device=cpu or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Installed versions of the packages a result depends on."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the source tree (with ``-dirty`` if modified), or None outside git."""
    root = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def run(cfg: RunConfig) -> dict[str, Any]:
    """Train the configuration and write its run record to ``cfg.out``.

    ``cfg.out`` is checked before anything is trained (``records.check_target``), and its
    lock is held until the record is written: another process writing the same record makes
    this one fail at once (``records.RecordBusy``).

    A diverging run is recorded with ``status: diverged``. An unexpected error is recorded
    with ``status: failed`` and its traceback, then raised again.

    Returns:
        The contents of ``run.json``.
    """
    with records.record_lock(cfg.out, wait=False):
        records.check_target(cfg.out, fingerprint(cfg), cfg.overwrite)
        return _train_and_record(cfg)


def _train_and_record(cfg: RunConfig) -> dict[str, Any]:
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    data = make_dataset(cfg.data)
    model = make_model(data, cfg.model)
    info: dict[str, Any] = {
        "status": "failed",
        "factors": factor_values(cfg),
        "seed": cfg.seed,
        "fingerprint": fingerprint(cfg),
        "command": rerun.command(cfg),
        "metric": data.metric,
        "chance": data.chance,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "n_params": sum(p.numel() for p in model.parameters()),
        "versions": dict(versions()),
        "git_commit": git_commit(),
    }
    recurrent = cfg.model.name in RECURRENT_MODELS
    try:
        result = train(model, data, cfg, device)
    except Exception:
        info["error"] = traceback.format_exc()
        records.write_run_record(cfg.out, to_container(cfg), info, [], [], [] if recurrent else None,
                                 overwrite=cfg.overwrite)
        raise
    info.update(
        status=result.status,
        steps=result.steps,
        steps_done=len(result.step_rows) if result.status == "diverged" else result.steps,
        diverged_step=result.diverged_step,
        final_train_loss=result.final.get("train_loss"),
        final_train_metric=result.final.get("train_metric"),
        test_loss=result.final.get("test_loss"),
        test_metric=result.final.get("test_metric"),
        test_accuracy=result.final.get("test_metric") if data.metric == "accuracy" else None,
        wall_time_s=result.wall_time_s,
        probe_steps=sorted({row[0] for row in result.layer_rows}),
        underflow_probes=result.underflow_probes,
    )
    records.write_run_record(
        cfg.out, to_container(cfg), info, result.step_rows, result.layer_rows,
        result.timestep_rows if recurrent else None, overwrite=cfg.overwrite,
    )
    return info

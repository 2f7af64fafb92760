"""Run validated configurations end to end: seed, build, train, write the run records.

``run`` trains one configuration, ``run_stack`` several as one stack (``loop.train_stack``).

Both the Hydra entry point (``gradatlas.run.train``) and batch runners call ``run``, so a record
is the same whichever way it was produced.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import random
import traceback
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from gradatlas.core.names import RECURRENT_MODELS
from gradatlas.core.provenance import git_commit, run_versions
from gradatlas.run import records, rerun
from gradatlas.run.config import ConfigError, RunConfig, factor_values, fingerprint, to_container
from gradatlas.run.data import make_dataset
from gradatlas.run.loop import train_stack
from gradatlas.run.models import make_model


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without one is a config error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available; use device=cpu or auto")
    return torch.device(name)


def configure_determinism(device: torch.device) -> None:
    """Settings under which a rerun of the same stack on the same device repeats every value:
    no TF32 in CUDA matmuls (float32 stays float32), deterministic algorithms where torch has
    them (warn, not fail, where an operation has none). On the CPU these change nothing; on a
    GPU not checked yet (bench/README.md, "Not measured on a GPU")."""
    if device.type != "cuda":
        return
    # cuBLAS needs a fixed workspace for reproducible results; it reads this at its start.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True, warn_only=True)


# glibc's malloc, tuned for training processes (mallopt parameters of <malloc.h>). By default
# it returns freed memory at the heap's top to the system and serves blocks above a threshold
# that adapts up to 32 MiB with fresh mmaps, so the tensors of every training step arrive as
# new, zero-filled pages; keeping freed memory (trimming off, a fixed threshold at the 32 MiB
# maximum, 256 MiB grown at a time) spares stacks those page faults (bench/README.md,
# "Memory"). The values computed are unchanged: torch aligns every block itself (64 bytes).
# The cost: a process keeps the memory of its largest step until it ends (training jobs are
# short-lived).
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
# mallopt(3): a trim threshold of -1 disables trimming; values are C ints.
MALLOC_SETTINGS = {M_TRIM_THRESHOLD: -1, M_TOP_PAD: 256 * 2**20, M_MMAP_THRESHOLD: 32 * 2**20}


@lru_cache(maxsize=1)
def configure_allocator() -> bool:
    """Tune glibc's malloc for training (``MALLOC_SETTINGS``), once per process; return
    whether it was tuned (False on a C library other than glibc, which is left as it is)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        applied = [mallopt(param, value) == 1 for param, value in MALLOC_SETTINGS.items()]  # every one
        return all(applied)
    except (OSError, AttributeError):
        return False


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(cfg: RunConfig) -> dict[str, Any]:
    """Train the configuration and write its run record to ``cfg.out``: a stack of one.

    ``cfg.out`` is checked before anything is trained (``records.check_target``), and its
    lock is held until the record is written: another process writing the same record makes
    this one fail at once (``records.RecordBusy``).

    A diverging run is recorded with ``status: diverged``. An unexpected error is recorded
    with ``status: failed`` and its traceback, then raised again.

    Returns:
        The contents of ``run.json``.
    """
    return run_stack([cfg])[0]


def stack_id(cfgs: list[RunConfig]) -> str:
    """A name for a stack: a digest of its members' fingerprints, in order."""
    return hashlib.sha256("\n".join(fingerprint(cfg) for cfg in cfgs).encode()).hexdigest()[:16]


def run_stack(cfgs: list[RunConfig]) -> list[dict[str, Any]]:
    """Train the configurations as one stack (``loop.train_stack``; they must share
    ``config.stack_key``) and write one run record per member, as ``run`` does for one.

    Every member's target is checked and locked before anything trains. ``run.json`` of
    member k says ``stack: {size, index: k, id}``; ``wall_time_s`` is the stack's.

    Returns:
        The contents of each member's ``run.json``, in order.
    """
    with contextlib.ExitStack() as locks:
        for cfg in cfgs:
            locks.enter_context(records.record_lock(cfg.out, wait=False))
            records.check_target(cfg.out, fingerprint(cfg), cfg.overwrite)
        return _train_and_record(cfgs)


def _train_and_record(cfgs: list[RunConfig]) -> list[dict[str, Any]]:
    device = resolve_device(cfgs[0].device)
    configure_determinism(device)
    configure_allocator()
    models, data = [], None
    for cfg in cfgs:
        # Seeded, then data and model built, exactly as for a run alone: member k starts
        # from the weights its run alone starts from.
        seed_everything(cfg.seed)
        member_data = make_dataset(cfg.data)
        data = data if data is not None else member_data
        models.append(make_model(member_data, cfg.model))
    assert data is not None
    name = stack_id(cfgs)
    infos: list[dict[str, Any]] = [{
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
        "versions": dict(run_versions()),
        "git_commit": git_commit(),
        "stack": {"size": len(cfgs), "index": index, "id": name},
    } for index, (cfg, model) in enumerate(zip(cfgs, models))]
    recurrent = cfgs[0].model.name in RECURRENT_MODELS
    try:
        results = train_stack(models, data, cfgs, device)
    except Exception:
        for cfg, info in zip(cfgs, infos):
            info["error"] = traceback.format_exc()
            records.write_run_record(cfg.out, to_container(cfg), info, [], [], [] if recurrent else None,
                                     overwrite=cfg.overwrite)
        raise
    for cfg, info, result in zip(cfgs, infos, results):
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
            # Learning-rate selection reads these (data.n_val > 0); never the test split.
            val_loss=result.final.get("val_loss"),
            val_metric=result.final.get("val_metric"),
            wall_time_s=result.wall_time_s,
            probe_steps=sorted({row[0] for row in result.layer_rows}),
            underflow_probes=result.underflow_probes,
        )
        records.write_run_record(
            cfg.out, to_container(cfg), info, result.step_rows, result.layer_rows,
            result.timestep_rows if recurrent else None, overwrite=cfg.overwrite,
        )
    return infos

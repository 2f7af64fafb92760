"""One GPU per training job on a machine with several: a job claims a free GPU slot.

Snakemake counts GPUs (``--config gpus=N`` makes ``gpu`` a resource of N, and each training
job needs one), so at most N jobs train at once, but it does not say which GPU a job gets.
The job claims one itself: slot ``i`` is an exclusive lock (``flock``) on a file per GPU,
held as long as the process lives (the kernel drops it when the process ends, however it
ends), and ``CUDA_VISIBLE_DEVICES=i`` makes that GPU the job's only one. The locks sit in a
directory per user and machine (``GRADATLAS_GPU_LOCKS`` names another), so jobs of different
workflows share the GPUs too.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path
from typing import IO


def default_lock_dir() -> Path:
    """``$GRADATLAS_GPU_LOCKS``, else a per-user directory in the machine's temporary directory."""
    if os.environ.get("GRADATLAS_GPU_LOCKS"):
        return Path(os.environ["GRADATLAS_GPU_LOCKS"])
    return Path(tempfile.gettempdir()) / f"gradatlas-gpu-locks-{os.getuid()}"


class GpuSlot:
    """A claimed GPU: ``index`` and the open lock file that holds the claim."""

    def __init__(self, index: int, handle: IO[str]):
        self.index = index
        self._handle = handle

    def release(self) -> None:
        """Give the GPU back (also done by the kernel when the process ends)."""
        self._handle.close()


def claim_gpu(count: int, lock_dir: Path | None = None, poll_s: float = 1.0, timeout_s: float | None = None) -> GpuSlot:
    """Claim the first free of ``count`` GPU slots, waiting while all are taken.

    Raises:
        ValueError: if ``count`` < 1.
        TimeoutError: if no slot came free within ``timeout_s``.
    """
    if count < 1:
        raise ValueError(f"need at least one GPU slot, got {count}")
    lock_dir = default_lock_dir() if lock_dir is None else Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        for index in range(count):
            handle = open(lock_dir / f"gpu-{index}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return GpuSlot(index, handle)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"all {count} GPU slots in {lock_dir} stayed taken for {timeout_s} s")
        time.sleep(poll_s)


def use_gpu(slot: GpuSlot) -> None:
    """Make the slot's GPU the only one this process sees (before CUDA starts)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = str(slot.index)

"""``[function(item) for item in items]`` over forked worker processes.

Forked, not spawned: the workers start with the parent's memory (the loaded summary tables and
whatever caches it filled), so nothing large is pickled on the way in, and ``function`` may be
a closure. Only the results travel back (pickled). Where fork is unavailable or one process is
asked for, the items are mapped in this process.
"""

from __future__ import annotations

import multiprocessing
from typing import Callable, Iterable, Optional, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_TASK: Optional[tuple[Callable, list]] = None


def _call(index: int):
    function, items = _TASK  # type: ignore[misc]
    return function(items[index])


def forked_map(function: Callable[[T], R], items: Iterable[T], processes: int) -> list[R]:
    """``function`` of each item, in order, over at most ``processes`` workers; the items are
    handed out one at a time (the first ones first: put the longest first to balance)."""
    global _TASK
    items = list(items)
    if processes <= 1 or len(items) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return [function(item) for item in items]
    if _TASK is not None:
        raise RuntimeError("forked_map is not reentrant")
    _TASK = (function, items)
    try:
        with multiprocessing.get_context("fork").Pool(min(processes, len(items))) as pool:
            return pool.map(_call, range(len(items)), chunksize=1)
    finally:
        _TASK = None

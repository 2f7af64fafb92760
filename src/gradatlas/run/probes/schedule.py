"""The steps quantities are measured at: named schedules, each a function of the probe config."""

from __future__ import annotations

from typing import Callable

from gradatlas.run.config import ProbeConfig

EVERY_PROBE = "probe"


def probe_schedule(cfg: ProbeConfig, total_steps: int) -> set[int]:
    """Steps to probe: dense at first, then log-spaced, then every ``cfg.every``, plus the last."""
    if not cfg.enabled or total_steps < 1:
        return set()
    steps = set(range(min(cfg.dense_until, total_steps)))
    power = 1
    while power <= min(cfg.log_until, total_steps - 1):
        steps.add(power)
        power *= 2
    steps.update(range(0, total_steps, cfg.every))
    steps.add(total_steps - 1)
    return steps


# Schedule name -> the steps it measures at, given the probe config and the run's steps.
SCHEDULES: dict[str, Callable[[ProbeConfig, int], set[int]]] = {
    EVERY_PROBE: probe_schedule,
}

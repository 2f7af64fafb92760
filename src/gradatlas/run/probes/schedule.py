"""The steps quantities are measured at: named schedules, each a function of the probe config."""

from __future__ import annotations

from typing import Callable

from gradatlas.run.config import ProbeConfig

EVERY_PROBE = "probe"
PROBE_SET = "probe_set"
INIT = "init"
BACKWARD_GAIN = "backward_gain"
AT_INIT = "at_init"


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


def probe_set_schedule(cfg: ProbeConfig, total_steps: int) -> set[int]:
    """The probe steps that measure on the probe set: step 0, the last step, and those at
    multiples of ``cfg.probe_set_every`` (analysis reads the probe set's quantities at step 0
    and at the last probe)."""
    steps = probe_schedule(cfg, total_steps)
    return {step for step in steps if step in (0, total_steps - 1) or step % cfg.probe_set_every == 0}


def init_schedule(cfg: ProbeConfig, total_steps: int) -> set[int]:
    """Step 0 (the network at initialization) where ``cfg.jacobian_inputs`` asks for the
    Jacobian spectrum, else no step."""
    return {0} & probe_schedule(cfg, total_steps) if cfg.jacobian_inputs > 0 else set()


def backward_gain_schedule(cfg: ProbeConfig, total_steps: int) -> set[int]:
    """Step 0 where ``cfg.backward_gain`` is on (an initialization statistic), else none."""
    return {0} & probe_schedule(cfg, total_steps) if cfg.backward_gain else set()


def step_zero_schedule(cfg: ProbeConfig, total_steps: int) -> set[int]:
    """Step 0 alone (the network at initialization), where the run probes at all (an opt-in
    quantity is further gated by its switch, ``Quantity.switch``)."""
    return probe_schedule(cfg, total_steps) & {0}


# Schedule name -> the steps it measures at, given the probe config and the run's steps.
SCHEDULES: dict[str, Callable[[ProbeConfig, int], set[int]]] = {
    EVERY_PROBE: probe_schedule,
    PROBE_SET: probe_set_schedule,
    INIT: init_schedule,
    BACKWARD_GAIN: backward_gain_schedule,
    AT_INIT: step_zero_schedule,
}

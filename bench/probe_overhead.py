"""Benchmark: wall-time overhead of the default probe schedule against probing off.

For each configuration the same training run (same data, same seeds, fresh models each
time) is timed with ``probe=default`` (dense_until=1, log_until=64, every=100) and with
``probe=off``, in one process. Repetitions are interleaved in ABBA order (off, on, on, off,
off, on, ...) so that slow drift of the machine (thermal, other load) falls on both sides
equally. Each repetition times ``gradatlas.run.loop.train_stack`` (a stack of one, or with
``--stack E`` of E runs with seeds seed..seed+E-1), which does no file I/O.

The project's goal is an overhead of at most 5%: median(on) / median(off) <= 1.05.

Whole runs probe only 11-15 steps, so their on/off difference is small against run-to-run
noise. The dense estimate (``--dense-steps``) times short runs that probe every step against
the same steps unprobed, which gives the cost of one probe step precisely, and predicts the
overhead of the default schedule from it. See bench/README.md.

Usage (from the repository root):

    python bench/probe_overhead.py                      # full runs, 5 repeats each
    python bench/probe_overhead.py --quick --repeats 2  # a fast sanity check
    python bench/probe_overhead.py --device cpu --threads 1   # on a shared machine
    python bench/probe_overhead.py --device cuda --out bench/results/probe_overhead_cuda.json
    python bench/probe_overhead.py --stack 4 --cases mlp20_relu_he_mnist1d   # stacks of 4 seeds

This is a benchmark, not a test: it asserts nothing about the ratios and always exits 0
unless a run fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Optional

import torch

import gradatlas
from gradatlas.run import loop, probes
from gradatlas.run.config import RunConfig, load_run_config
from gradatlas.run.data import make_dataset
from gradatlas.run.models import make_model
from gradatlas.run.runner import configure_allocator, resolve_device, seed_everything

GOAL_RATIO = 1.05
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "probe_overhead.json"

# name -> (Hydra overrides of the full run, extra overrides for --quick)
CASES: dict[str, tuple[list[str], list[str]]] = {
    "mlp20_relu_he_mnist1d": (
        ["model=mlp", "model.depth=20", "model.width=128", "model.activation=relu", "model.init=he_normal",
         "data=mnist1d", "train.epochs=20", "train.batch_size=128"],
        ["train.epochs=3"],
    ),
    "lstm128_adding50": (
        ["model=lstm", "model.width=128", "data=adding", "data.length=50", "train.max_steps=300",
         "train.epochs=20", "train.batch_size=128"],
        ["train.max_steps=60", "train.epochs=2"],
    ),
    "rnn128_tanh_adding50": (
        ["model=rnn", "model.width=128", "model.activation=tanh", "data=adding", "data.length=50",
         "train.max_steps=300", "train.epochs=20", "train.batch_size=128"],
        ["train.max_steps=60", "train.epochs=2"],
    ),
}

MODES = ("off", "on")


def compose(overrides: list[str]) -> RunConfig:
    """Compose ``conf/train.yaml`` with Hydra's compose API and validate it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from gradatlas.run.train import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return load_run_config(hydra_compose(config_name="train", overrides=overrides))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_train(cfg: RunConfig, data, device: torch.device, stack: int = 1) -> tuple[float, float, loop.TrainingResult]:
    """Seed, build a fresh model (``stack`` of them: the run with seeds seed, seed + 1, ...,
    as a study's seeds) and time one call of ``loop.train_stack``.

    Returns wall seconds, CPU seconds of this process (all threads) and the first member's
    result. On a machine shared with other jobs CPU time is the steadier of the two: time
    spent waiting for a core does not count.
    """
    cfgs = [dataclasses.replace(cfg, seed=cfg.seed + k) for k in range(stack)]
    models = []
    for member in cfgs:
        seed_everything(member.seed)
        models.append(make_model(data, member.model))
    sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = loop.train_stack(models, data, cfgs, device)[0]
    sync(device)
    return time.perf_counter() - start, time.process_time() - cpu_start, result


class PhaseTimer:
    """Wraps the Prober's methods to time them (synchronising the device around each call).

    Only used for the separate ``--breakdown`` run, never in the timed comparison.
    """

    NAMES = ("after_backward", "after_update", "commit")

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._originals: dict[str, Callable] = {}

    def __enter__(self) -> "PhaseTimer":
        for name in self.NAMES:
            original = getattr(probes.Prober, name)
            self._originals[name] = original

            def wrapper(prober, *args, _name=name, _original=original, **kwargs):
                sync(self.device)
                start = time.perf_counter()
                out = _original(prober, *args, **kwargs)
                sync(self.device)
                self.seconds[_name] += time.perf_counter() - start
                self.calls[_name] += 1
                return out

            setattr(probes.Prober, name, wrapper)
        return self

    def __exit__(self, *exc) -> None:
        for name, original in self._originals.items():
            setattr(probes.Prober, name, original)


def same_training(a: loop.TrainingResult, b: loop.TrainingResult) -> bool:
    """Whether two runs followed the same trajectory (probing must not perturb training)."""
    la = [(r["loss"], r["grad_norm"]) for r in a.step_rows]
    lb = [(r["loss"], r["grad_norm"]) for r in b.step_rows]
    return la == lb and a.final == b.final


def dense_estimate(base: list[str], data, device: torch.device, steps: int, repeats: int,
                   name: str, stack: int = 1) -> dict[str, Any]:
    """Cost of one probe step from runs that probe every step, against the same runs unprobed.

    A whole run probes only a few steps, so its on/off difference is small against the
    run-to-run noise; ``steps`` probed steps in a row make it large. Interleaved like the
    main comparison.
    """
    cfgs = {
        "off": compose([*base, "probe=off", f"train.max_steps={steps}"]),
        "dense": compose([*base, "probe=default", f"probe.dense_until={steps}", f"train.max_steps={steps}"]),
    }
    times: dict[str, list[float]] = {"off": [], "dense": []}
    cpu: dict[str, list[float]] = {"off": [], "dense": []}
    for rep in range(repeats):
        for mode in (("off", "dense") if rep % 2 == 0 else ("dense", "off")):
            seconds, cpu_seconds, _ = timed_train(cfgs[mode], data, device, stack)
            times[mode].append(seconds)
            cpu[mode].append(cpu_seconds)
        print(f"  {name:<24} dense rep {rep + 1}/{repeats}: off {times['off'][-1]:.3f} s, "
              f"every step probed {times['dense'][-1]:.3f} s ({steps} steps)", flush=True)
    med = {m: statistics.median(v) for m, v in times.items()}
    med_cpu = {m: statistics.median(v) for m, v in cpu.items()}
    return {
        "steps": steps,
        "times_off_s": times["off"],
        "times_dense_s": times["dense"],
        "cpu_times_off_s": cpu["off"],
        "cpu_times_dense_s": cpu["dense"],
        "probe_step_ms": 1000 * (med["dense"] - med["off"]) / steps,
        "plain_step_ms": 1000 * med["off"] / steps,
        "probe_step_cpu_ms": 1000 * (med_cpu["dense"] - med_cpu["off"]) / steps,
        "plain_step_cpu_ms": 1000 * med_cpu["off"] / steps,
    }


def bench_case(name: str, overrides: list[str], device_name: str, repeats: int, warmup_steps: int,
               breakdown: bool, dense_steps: int, stack: int = 1) -> dict[str, Any]:
    base = [*overrides, f"device={device_name}", "out=bench/results/unused"]
    cfgs = {"off": compose([*base, "probe=off"]), "on": compose([*base, "probe=default"])}
    device = resolve_device(cfgs["on"].device)
    data = make_dataset(cfgs["on"].data)
    n_steps = loop.total_steps(cfgs["on"], len(data.x_train))
    schedule = sorted(probes.probe_schedule(cfgs["on"].probe, n_steps))

    # Warm-up: a short run of each mode (allocator, kernels, lazy init), not timed.
    for mode in MODES:
        warm = compose([*base, f"probe={'off' if mode == 'off' else 'default'}",
                        f"train.max_steps={min(warmup_steps, n_steps)}"])
        timed_train(warm, data, device, stack)

    times: dict[str, list[float]] = {m: [] for m in MODES}
    cpu: dict[str, list[float]] = {m: [] for m in MODES}
    results: dict[str, loop.TrainingResult] = {}
    for rep in range(repeats):
        order = MODES if rep % 2 == 0 else MODES[::-1]  # ABBA: off on | on off | off on ...
        for mode in order:
            seconds, cpu_seconds, result = timed_train(cfgs[mode], data, device, stack)
            times[mode].append(seconds)
            cpu[mode].append(cpu_seconds)
            results[mode] = result
            print(f"  {name:<24} rep {rep + 1}/{repeats} probe={mode:<3} {seconds:8.3f} s "
                  f"(cpu {cpu_seconds:8.3f} s)", flush=True)

    med = {m: statistics.median(times[m]) for m in MODES}
    med_cpu = {m: statistics.median(cpu[m]) for m in MODES}
    # Pairs in time order: (off_i, on_i) were run next to each other.
    paired = [on / off for off, on in zip(times["off"], times["on"])]
    entry: dict[str, Any] = {
        "overrides": overrides,
        "steps": n_steps,
        "probe_steps": len(schedule),
        "probe_schedule": schedule,
        "times_off_s": times["off"],
        "times_on_s": times["on"],
        "median_off_s": med["off"],
        "median_on_s": med["on"],
        "ratio": med["on"] / med["off"],
        "cpu_times_off_s": cpu["off"],
        "cpu_times_on_s": cpu["on"],
        "cpu_ratio": med_cpu["on"] / med_cpu["off"],
        "paired_ratio_median": statistics.median(paired),
        "ms_per_step_off": 1000 * med["off"] / n_steps,
        "extra_ms_per_probe_step": 1000 * (med["on"] - med["off"]) / max(len(schedule), 1),
        "goal_met": med["on"] / med["off"] <= GOAL_RATIO,
        "layer_rows": len(results["on"].layer_rows),
        "timestep_rows": len(results["on"].timestep_rows),
        "probing_leaves_training_unchanged": same_training(results["off"], results["on"]),
    }
    if dense_steps > 0:
        dense = dense_estimate(base, data, device, min(dense_steps, n_steps), repeats, name, stack)
        # The default schedule's overhead predicted from the measured cost of one probe step.
        dense["predicted_ratio"] = 1 + len(schedule) * dense["probe_step_ms"] / 1000 / med["off"]
        dense["predicted_cpu_ratio"] = 1 + len(schedule) * dense["probe_step_cpu_ms"] / 1000 / med_cpu["off"]
        entry["dense"] = dense
    if breakdown:
        with PhaseTimer(device) as timer:
            seconds, _, _ = timed_train(cfgs["on"], data, device, stack)
        entry["breakdown"] = {
            "run_s": seconds,
            "prober_s": dict(timer.seconds),
            "prober_calls": dict(timer.calls),
            "prober_ms_per_probe_step": {k: 1000 * v / max(timer.calls[k], 1) for k, v in timer.seconds.items()},
        }
    return entry


def print_table(cases: dict[str, dict[str, Any]]) -> None:
    header = f"{'configuration':<24} {'steps':>5} {'probes':>6} {'off [s]':>8} {'on [s]':>8} {'ratio':>6} " \
             f"{'paired':>6} {'<=1.05':>6} {'step ms':>7} {'probe ms':>8} {'pred.':>6} {'cpu r.':>6} {'cpu p.':>6}"
    print(header)
    print("-" * len(header))
    for name, c in cases.items():
        d = c.get("dense")
        extra = (f" {d['plain_step_ms']:>7.2f} {d['probe_step_ms']:>8.2f} {d['predicted_ratio']:>6.3f}"
                 if d else f" {'-':>7} {'-':>8} {'-':>6}")
        extra += f" {c['cpu_ratio']:>6.3f} " + (f"{d['predicted_cpu_ratio']:>6.3f}" if d else f"{'-':>6}")
        print(f"{name:<24} {c['steps']:>5} {c['probe_steps']:>6} {c['median_off_s']:>8.3f} {c['median_on_s']:>8.3f} "
              f"{c['ratio']:>6.3f} {c['paired_ratio_median']:>6.3f} {'yes' if c['goal_met'] else 'NO':>6}{extra}")
    print("ratio = median(on)/median(off) over whole runs; paired = median of the per-pair ratios;\n"
          "step ms = one unprobed step, probe ms = the extra cost of one probe step (runs probing every\n"
          "step), pred. = 1 + probes x probe ms / median(off): the overhead predicted from it;\n"
          "cpu r. and cpu p.: the same ratio and prediction from the process's CPU time (steadier\n"
          "on a machine shared with other jobs).")
    for name, c in cases.items():
        if "breakdown" in c:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in c["breakdown"]["prober_ms_per_probe_step"].items())
            print(f"{name}: Prober ms per probe step: {parts}")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per mode and configuration")
    parser.add_argument("--quick", action="store_true", help="short runs for a fast sanity check")
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--dense-steps", type=int, default=100,
                        help="also time runs of this many steps that probe every step, to estimate the cost "
                             "of one probe step precisely (0: skip)")
    parser.add_argument("--breakdown", action="store_true",
                        help="one extra probed run per configuration timing the Prober's methods")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--stack", type=int, default=1,
                        help="train stacks of this many runs (seeds seed..seed+E-1) instead of one run")
    parser.add_argument("--label", default="", help="free text stored in the JSON (e.g. before/after a change)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.stack < 1:
        parser.error("--stack must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    configure_allocator()  # as every training process of the workflow (gradatlas.run.runner)

    out = args.out.resolve()  # relative to where the command was started
    # The data cache (conf/data/*.yaml: cache_dir) is relative to the working directory.
    os.chdir(ROOT)
    device = resolve_device(args.device)
    print(f"probe overhead: device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"repeats={args.repeats}{' (quick)' if args.quick else ''}", flush=True)

    cases: dict[str, dict[str, Any]] = {}
    for name in args.cases:
        full, quick = CASES[name]
        overrides = [*full, *quick] if args.quick else full
        cases[name] = bench_case(name, overrides, args.device, args.repeats, args.warmup_steps, args.breakdown,
                                 args.dense_steps, args.stack)

    print()
    print_table(cases)
    report = {
        "benchmark": "probe_overhead",
        "label": args.label,
        "stack": args.stack,
        "gradatlas": str(Path(gradatlas.__file__).resolve().parent),
        "goal_ratio": GOAL_RATIO,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else argv,
        "quick": args.quick,
        "repeats": args.repeats,
        "order": "ABBA interleaved (off,on | on,off | ...), fresh models with the same seeds each run",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else (platform.processor() or platform.machine()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cases": cases,
        "all_goals_met": all(c["goal_met"] for c in cases.values()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

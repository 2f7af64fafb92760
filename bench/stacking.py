"""Benchmark: per-model throughput of stacked runs against the same runs one by one.

Slices of a scale's depth study (its learning-rate sweep: MLPs that share a depth and an
activation and differ in initializer and learning rate), residual study (its sweep) and
memory study (recurrent nets on the adding problem, differing in seed), from the full scale
(width 64, the scale a 2-core machine runs; ``--scale cluster``: the width-128 grid), are
trained twice in one process: as stacks (``loop.train_stack``) and run by run (``loop.train``, a stack of
one). Repetitions alternate ABBA (stacked, alone, alone, stacked, ...), so that drift of a
shared machine falls on both sides. Runs are cut to ``max_steps`` steps and train unprobed
(``probe=off``, as sweep runs do); the final evaluation of each run is included.

Per slice it prints the per-model throughput ratio (seconds one by one / seconds stacked)
and the share of a run's cost that a stack pays once (``costs.STACK_SHARED``'s form:
stack = run x (shared + (1 - shared) x E)). The last line is ``speedup <ratio>``: the
total seconds one by one over the total stacked, on the device of the run (CPU by default).

    python bench/stacking.py --quick            # <= 3 min on one CPU thread
    python bench/stacking.py --out bench/results/stacking.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from gradatlas.run import loop
from gradatlas.run.config import stack_key
from gradatlas.run.data import make_dataset
from gradatlas.run.models import make_model
from gradatlas.run.runner import configure_allocator, resolve_device, seed_everything
from gradatlas.workflow.studies import compose_run, load_study

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "conf" / "studies"

# scale -> slice name -> (study, which runs: sweep or own, factor values the slice keeps,
# stack size, max_steps full, max_steps quick; None: not in --quick). Stack sizes are those of
# the CPU limit (conf/workflow.yaml: 8 sweep runs of one shape) and the memory study's 4 seeds
# per cell; residual MLPs are measured stacked although the CPU planner keeps them alone.
SLICES = {
    # The scale this 2-core machine runs (width 64, depths 2-30): what the CPU goal is about.
    "full": {
        "mlp30_relu_sweep": ("depth_activation_init", True, {"activation": "relu", "depth": 30}, 8, 120, 60),
        "mlp10_tanh_sweep": ("depth_activation_init", True, {"activation": "tanh", "depth": 10}, 8, 120, None),
        "mlp2_sigmoid_sweep": ("depth_activation_init", True, {"activation": "sigmoid", "depth": 2}, 8, 200, None),
        "resmlp30_relu_sweep": ("residual", True, {"model": "resmlp", "activation": "relu", "depth": 30}, 8, 120, None),
        "lstm_adding50": ("memory", False, {"model": "lstm", "data": "adding", "length": 50}, 4, 48, 24),
        "gru_adding50": ("memory", False, {"model": "gru", "data": "adding", "length": 50}, 4, 48, None),
        "rnn_adding50": ("memory", False, {"model": "rnn", "data": "adding", "length": 50}, 4, 80, 40),
        "lstm_adding100": ("memory", False, {"model": "lstm", "data": "adding", "length": 100}, 4, 24, None),
    },
    # The grid for GPUs and clusters (width 128, depths 5-50), as the calibration.
    "cluster": {
        "mlp20_relu_sweep": ("depth_activation_init", True, {"activation": "relu", "depth": 20}, 8, 120, 40),
        "mlp50_tanh_sweep": ("depth_activation_init", True, {"activation": "tanh", "depth": 50}, 8, 60, None),
        "mlp5_sigmoid_sweep": ("depth_activation_init", True, {"activation": "sigmoid", "depth": 5}, 8, 200, None),
        "resmlp20_relu_sweep": ("residual", True, {"model": "resmlp", "activation": "relu", "depth": 20}, 6, 120, None),
        "lstm_adding50": ("memory", False, {"model": "lstm", "data": "adding", "length": 50}, 4, 24, 8),
        "gru_adding50": ("memory", False, {"model": "gru", "data": "adding", "length": 50}, 4, 24, None),
        "rnn_adding50": ("memory", False, {"model": "rnn", "data": "adding", "length": 50}, 4, 40, 12),
    },
}


def slice_configs(scale: str, name: str, quick: bool, device: str):
    """The slice's run configs: its first E runs of one shape, cut to its step count."""
    study_name, sweep, keep, size, steps, quick_steps = SLICES[scale][name]
    study = load_study(STUDIES / f"{study_name}.yaml", scale, validate=False)
    runs = [r for r in (study.sweep if sweep else study.runs)
            if all(dict(r.factors).get(k) == v for k, v in keep.items())][:size]
    max_steps = quick_steps if quick else steps
    cfgs = [compose_run({**r.overrides(), "max_steps": max_steps, "probe": "off"}, out=f"/nonexistent/{i}",
                        device=device) for i, r in enumerate(runs)]
    keys = {stack_key(c) for c in cfgs}
    assert len(cfgs) == size and len(keys) == 1, (name, len(cfgs), len(keys))
    return cfgs


def _build(cfgs):
    models = []
    for cfg in cfgs:
        seed_everything(cfg.seed)
        data = make_dataset(cfg.data)
        models.append(make_model(data, cfg.model))
    return data, models


def time_stacked(cfgs, device) -> float:
    data, models = _build(cfgs)
    start = time.perf_counter()
    loop.train_stack(models, data, cfgs, device)
    _sync(device)
    return time.perf_counter() - start


def time_alone(cfgs, device) -> float:
    total = 0.0
    for cfg in cfgs:
        data, (model,) = _build([cfg])
        start = time.perf_counter()
        loop.train(model, data, cfg, device)
        _sync(device)
        total += time.perf_counter() - start
    return total


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller slice, <= 3 min on one CPU thread")
    parser.add_argument("--scale", choices=sorted(SLICES), default="full",
                        help="whose grid the slices come from (default: full, the scale a 2-core machine runs)")
    parser.add_argument("--repeats", type=int, default=None, help="ABBA repetitions (default 1: two timings each)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", default=None, help="slice names (default: all)")
    parser.add_argument("--out", type=Path, default=None, help="write the measurements as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    configure_allocator()  # as every training process of the workflow (gradatlas.run.runner)
    device = resolve_device(args.device)
    repeats = args.repeats or 1
    slices = SLICES[args.scale]
    parser_names = [n for n, spec in slices.items() if not args.quick or spec[5] is not None]
    names = [n for n in parser_names if not args.only or n in args.only]
    rows, total_alone, total_stacked = {}, 0.0, 0.0
    for name in names:
        cfgs = slice_configs(args.scale, name, args.quick, str(device))
        time_alone(cfgs[:1], device)  # warm-up: data cache, first-call costs
        stacked, alone = [], []
        for _ in range(repeats):  # ABBA
            stacked.append(time_stacked(cfgs, device))
            alone.append(time_alone(cfgs, device))
            alone.append(time_alone(cfgs, device))
            stacked.append(time_stacked(cfgs, device))
        size = len(cfgs)
        ratio = statistics.median(alone) / statistics.median(stacked)
        shared = size * (1 - 1 / ratio) / (size - 1)
        rows[name] = {"model": cfgs[0].model.name, "stack": size, "steps": cfgs[0].train.max_steps,
                      "alone_s": alone, "stacked_s": stacked, "ratio": ratio, "shared": shared}
        total_alone += sum(alone)
        total_stacked += sum(stacked)
        print(f"{name:<20} E={size:<3} steps={cfgs[0].train.max_steps:<4} one by one "
              f"{statistics.median(alone):7.2f} s  stacked {statistics.median(stacked):7.2f} s  "
              f"per-model throughput x{ratio:.2f}  shared share {shared:.2f}", flush=True)
    speedup = total_alone / total_stacked
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.processor() or platform.machine(), "device": str(device),
            "threads": args.threads, "quick": args.quick, "scale": args.scale, "torch": torch.__version__,
            "slices": rows, "speedup": speedup}, indent=1) + "\n")
    print(f"speedup {speedup:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

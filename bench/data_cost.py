"""Benchmark: the cost model against one MLP trained on each of two data sets.

A depth-10, width-64 ReLU/He MLP is trained on ``digits`` (30 epochs of its 1,197 training
examples) and on ``mnist1d`` (8 epochs of 3,500), in one process on one CPU thread, in ABBA
order so that drift of a shared machine falls on both sides. Per run it prints the in-loop
seconds (``wall_time_s`` of the record), the seconds outside (data loading included), and
``costs.estimated_seconds``; the last line is the ratio (measured / estimated) of each data set,
whose quotient says whether the cost model needs a per-data-set term (it does not when the
quotient is near 1: the model prices steps and evaluations, whatever the data).

    python bench/data_cost.py --pairs 2 --out bench/results/data_cost.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from gradatlas.run import runner
from gradatlas.run.config import load_run_config
from gradatlas.run.train import CONF_DIR
from gradatlas.workflow import costs

MODEL = ["model=mlp", "model.depth=10", "model.width=64", "model.activation=relu", "model.init=he_normal",
         "device=cpu"]
CASES = {"digits": ["data=digits", "data.n_val=240", "train.epochs=30"],
         "mnist1d": ["data=mnist1d", "data.n_val=500", "train.epochs=8"]}


def one_run(name: str, seed: int, work: Path) -> dict:
    """Train case ``name`` with ``seed`` under ``work``; its measured and estimated seconds."""
    overrides = [*MODEL, *CASES[name], f"seed={seed}", f"data.cache_dir={work / 'cache'}",
                 f"out={work / f'{name}-{seed}'}"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = load_run_config(compose("train", overrides=overrides))
    start = time.perf_counter()
    info = runner.run(cfg)
    return {"data": name, "seed": seed, "in_loop_s": info["wall_time_s"], "outside_s": time.perf_counter() - start,
            "estimated_s": costs.estimated_seconds(cfg), "steps": info["steps"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2, help="ABBA pairs of runs per data set")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gradatlas-data-cost-") as tmp:
        order = list(CASES)
        for seed in range(2 * args.pairs):
            for name in order if seed % 2 == 0 else order[::-1]:
                rows.append(one_run(name, seed, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
    ratio = {name: statistics.median(r["in_loop_s"] / r["estimated_s"] for r in rows if r["data"] == name)
             for name in CASES}
    print(" ".join(f"{name} measured/estimated {value:.2f}" for name, value in ratio.items()),
          f"quotient digits/mnist1d {ratio['digits'] / ratio['mnist1d']:.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "ratio": ratio}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

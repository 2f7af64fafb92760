"""Seconds a training job spends per run outside the step loop, and what it spends per run against
what the cost model estimates: ``python bench/run_overhead.py [--rounds N]``.

Each round trains, in a fresh results folder and one torch thread (``gradatlas.workflow.batch``,
as the workflow's training jobs do), the batches of ``BATCHES``: the init-only runs (one step) of
weight_crossing at the quick scale (width 128, depth 16, stacks of 8) and at the full scale
(width 256, depth 20, unstacked). Per batch it reads the time of every stack from the batch's log
(data, model, training, probes, the record) and the in-loop time from each record's
``wall_time_s`` (``run.loop``); their difference over the runs, plus composing one run's config
(which the batch does for all its runs before the first stack, timed here in-process), is the
overhead per run outside the loop. Stack times are logged to 0.1 s: the quick batch's stacks of
8 (0.3-0.4 s each) resolve it better than the full batch's single runs.
The estimate is the plan's (``studies.batch_cost`` with the stack size of the workflow).
Writes ``bench/results/run_overhead.json`` and prints one line per batch and the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# (study, scale, run indices): 40 runs each.
BATCHES = (("weight_crossing", "quick", range(0, 40)), ("weight_crossing", "full", range(100, 140)))
STACK_SIZE = 8
STACK_LINE = re.compile(r"stack \d+/\d+: \d+ runs .* in ([\d.]+) s")


def measure(root: Path, study: str, scale: str, indices: range) -> dict:
    """Train one batch under ``root`` and return its per-run times and the plan's estimate."""
    from gradatlas.workflow import studies

    manifest = root / scale / "batches" / study / "batch-0.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = subprocess.run([sys.executable, "-m", "gradatlas.workflow.batch", str(REPO / "conf" / "studies" / f"{study}.yaml"),
                          "--scale", scale, "--runs", ",".join(map(str, indices)), "--threads", "1",
                          "--stack-size", str(STACK_SIZE), "--manifest", str(manifest)],
                         cwd=REPO, env=env, check=True, capture_output=True, text=True).stdout
    stacks = [float(m.group(1)) for m in STACK_LINE.finditer(log)]
    record = json.loads(manifest.read_text())
    in_loop = {}
    for entry in record["runs"]:  # a stack's members share their stack's wall time
        in_loop[entry.get("stack", {}).get("id", entry["path"])] = entry["wall_time_s"]
    planned = studies.load_study(REPO / "conf" / "studies" / f"{study}.yaml", scale)
    estimate = studies.batch_cost(planned, tuple(indices), stack_size=STACK_SIZE)
    n = len(indices)
    # The batch composes every run's config before its first stack: timed here, in this process.
    started = time.perf_counter()
    for i in indices:
        studies.compose_run(planned.runs[i].overrides(), out=str(root / "compose"), device="cpu", overwrite=True)
    compose = (time.perf_counter() - started) / n
    return {"study": study, "scale": scale, "runs": n, "stacks": len(stacks), "stack_s": sum(stacks),
            "in_loop_s": sum(in_loop.values()), "estimate_s": estimate, "compose_per_run_s": compose,
            "outside_loop_per_run_s": (sum(stacks) - sum(in_loop.values())) / n + compose,
            "measured_over_estimate": sum(stacks) / estimate, "load_average": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    """Run the rounds, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "run_overhead.json")
    args = parser.parse_args(argv)
    rows = []
    for _ in range(args.rounds):
        for study, scale, indices in BATCHES:
            with tempfile.TemporaryDirectory(prefix="gradatlas-overhead-") as tmp:
                row = measure(Path(tmp), study, scale, indices)
            rows.append(row)
            print(f"{row['study']} {row['scale']}: {row['runs']} runs in {row['stacks']} stacks, {row['stack_s']:.2f} s "
                  f"(in loop {row['in_loop_s']:.2f} s), estimate {row['estimate_s']:.2f} s: "
                  f"outside the loop {row['outside_loop_per_run_s']:.4f} s/run, measured/estimate "
                  f"{row['measured_over_estimate']:.2f} (load {row['load_average']:.1f})", flush=True)
    summary = {"outside_loop_per_run_s": statistics.median(r["outside_loop_per_run_s"] for r in rows),
               **{f"measured_over_estimate_{scale}": statistics.median(r["measured_over_estimate"] for r in rows
                                                                        if r["scale"] == scale)
                  for _, scale, _ in BATCHES}}
    print("medians:", json.dumps(summary))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "median": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

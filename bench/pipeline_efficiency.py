"""Pipeline efficiency: in-process training time over (wall time x cores) of a fresh workflow run.

    python bench/pipeline_efficiency.py --scale quick --cores 2 [--studies a,b] [--out F]

Copies the workflow's files into a scratch directory (so the checkout's results stay
untouched), runs ``snakemake --cores N`` there from nothing, and reads the summed
``wall_time_s`` of every run (time inside the training loop) from the aggregated runs
table. Efficiency = summed training time / (snakemake wall time x cores). The goal at the
quick scale is at least 0.75: process start-up, imports, data loading, record writing and
idle cores are the losses.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]")
RULE = re.compile(r"^(?:local)?rule (\w+):")
JOBID = re.compile(r"^\s+jobid: (\d+)")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)")


def job_timeline(log: str) -> list[dict]:
    """Start and end (seconds, 1 s resolution) of every job, from Snakemake's log.

    Snakemake stamps each job's start (``[date]`` then ``rule NAME:`` ... ``jobid: N``) and
    its end (``[date]`` then ``Finished jobid: N (Rule: NAME)``).
    """
    stamp, rule, starts, jobs = None, None, {}, []
    for line in log.splitlines():
        if m := STAMP.match(line):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y").timestamp()
        elif m := RULE.match(line):
            rule = m.group(1)
        elif (m := JOBID.match(line)) and rule is not None:
            starts[m.group(1)] = (rule, stamp)
            rule = None
        elif (m := FINISHED.match(line)) and m.group(1) in starts:
            name, begun = starts.pop(m.group(1))
            jobs.append({"rule": name, "start": begun, "end": stamp})
    origin = min((job["start"] for job in jobs), default=0.0)
    return [{**job, "start": job["start"] - origin, "end": job["end"] - origin} for job in jobs]


def phases(jobs: list[dict], wall: float, cores: int) -> dict:
    """Where the core-seconds went: training jobs, the rest after them, idle cores in between."""
    train = [job for job in jobs if job["rule"] == "train"]
    if not train:
        return {}
    train_end = max(job["end"] for job in train)
    busy = sum(job["end"] - job["start"] for job in train)
    durations = sorted(job["end"] - job["start"] for job in train)
    return {
        "train_phase_s": train_end,
        "train_jobs_core_s": busy,
        "train_phase_idle_core_s": cores * train_end - busy,
        "after_training_s": wall - train_end,
        "train_job_s_min_median_max": [durations[0], durations[len(durations) // 2], durations[-1]],
        "rules_after_training_s": {job["rule"]: job["end"] - job["start"] for job in jobs if job["rule"] != "train"},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--studies", default="", help="comma-separated study names (default: all)")
    parser.add_argument("--target", default="all", help="snakemake target rule (default: all, paper included)")
    parser.add_argument("--out", default=str(REPO / "bench/results/pipeline_efficiency.json"))
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gradatlas-bench-"))
    # The package too (first on PYTHONPATH): the run measures this snapshot even if the
    # checkout is edited meanwhile.
    for name in ("Snakefile", "rules", "conf", "environment.yml", "paper", "report", "src"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    env = {**os.environ, "GRADATLAS_CONF": str(work / "conf"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(work / "src"), os.environ.get("PYTHONPATH")]))}
    env.setdefault("GRADATLAS_CACHE", str(REPO / ".cache/gradatlas"))
    config = [f"scale={args.scale}"]
    if args.studies:
        config.append(f"studies=[{args.studies}]")
    command = [sys.executable, "-m", "snakemake", args.target, "--cores", str(args.cores), "--config", *config]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
        return proc.returncode
    runs = pd.read_parquet(work / f"results/{args.scale}/summary/runs.parquet")
    job_counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", proc.stdout + proc.stderr, re.M)}
    train_time = float(runs["wall_time_s"].sum())
    jobs = job_timeline(proc.stderr)
    overheads = []
    for manifest in (work / f"results/{args.scale}/batches").glob("*/batch-*.json"):
        batch = json.loads(manifest.read_text())
        trained = sum(entry["wall_time_s"] or 0.0 for entry in batch["runs"])
        overheads.append(batch["wall_time_s"] - trained)
    result = {
        "scale": args.scale,
        "cores": args.cores,
        "studies": args.studies or "all",
        "runs": int(len(runs)),
        "statuses": runs["status"].value_counts().to_dict(),
        "jobs": job_counts,
        "wall_s": round(wall, 1),
        "train_s": round(train_time, 1),
        "efficiency": round(train_time / (wall * args.cores), 3),
        "phases": phases(jobs, wall, args.cores),
        "in_batch_overhead_s": round(sum(overheads), 1),
        "machine": platform.node(),
        "cpu_count": os.cpu_count(),
    }
    result["timeline"] = jobs
    print(json.dumps({k: v for k, v in result.items() if k != "timeline"}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

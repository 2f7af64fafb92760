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
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--studies", default="", help="comma-separated study names (default: all)")
    parser.add_argument("--target", default="aggregate", help="snakemake target rule (default: aggregate)")
    parser.add_argument("--out", default=str(REPO / "bench/results/pipeline_efficiency.json"))
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gradatlas-bench-"))
    for name in ("Snakefile", "rules", "conf", "environment.yml", "paper", "report"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / name)
    env = {**os.environ, "GRADATLAS_CONF": str(work / "conf")}
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
    jobs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", proc.stdout + proc.stderr, re.M)}
    train_time = float(runs["wall_time_s"].sum())
    result = {
        "scale": args.scale,
        "cores": args.cores,
        "studies": args.studies or "all",
        "runs": int(len(runs)),
        "statuses": runs["status"].value_counts().to_dict(),
        "jobs": jobs,
        "wall_s": round(wall, 1),
        "train_s": round(train_time, 1),
        "efficiency": round(train_time / (wall * args.cores), 3),
        "machine": platform.node(),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

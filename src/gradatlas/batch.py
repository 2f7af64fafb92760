"""Train one batch of a study's runs in one process: ``python -m gradatlas.batch``.

Starting Python and importing torch costs seconds, more than a small run trains; a batch
pays it once for many runs. Each run still gets its own atomic record, and a run whose
complete record (``records.is_complete``) already exists with the same config fingerprint is
reused, not retrained (a damaged one is retrained):
adding a value to a grid, or rerunning after ``kill -9``, trains only what is missing.
The batch's manifest (written last, atomically) lists its runs; aggregation reads it.
The log shows each run as it ends, with an estimate of the time the batch has left.
With ``--gpus N`` the job first claims one of N GPUs (``gpus``) and trains on it alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

from gradatlas import records
from gradatlas.config import ConfigError, fingerprint
from gradatlas.costs import estimated_seconds
from gradatlas.gpus import claim_gpu, use_gpu
from gradatlas.runner import run
from gradatlas.studies import StudyError, compose_run, load_study


def _indices(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated run indices, got {text!r}") from None


def _reusable(out: Path, wanted: str) -> dict | None:
    """``run.json`` of the complete record at ``out`` if it has config ``wanted`` and did not
    fail; None if the run must be trained (no record, an incomplete one, another config)."""
    try:
        info = records.check_record(out)
    except records.RecordError:
        return None
    return info if info["fingerprint"] == wanted and info["status"] != "failed" else None


def run_batch(study_file: str, scale: str, indices: list[int], results: str, device: str = "auto") -> dict:
    """Train (or reuse) the study's runs ``indices`` (the workflow's batch plan) and return
    the batch's manifest.

    Failed runs are recorded with ``status: failed`` and listed; the others go on.
    """
    study = load_study(study_file, scale, validate=False)
    bad = [i for i in indices if not 0 <= i < len(study.runs)]
    if bad or not indices:
        raise ValueError(f"study {study.name} at scale {scale} has runs 0..{len(study.runs) - 1}; got {indices}")
    entries = []
    planned_runs = [study.runs[i] for i in indices]
    # The workflow owns <results>/<scale>/runs: a record of an older config of the cell, or a
    # damaged one, is replaced (overwrite); anything else there is still refused.
    cfgs = [compose_run(planned.overrides(), out=str(records.run_dir(results, scale, planned.relpath)),
                        device=device, overwrite=True)
            for planned in planned_runs]
    estimates = [estimated_seconds(cfg) for cfg in cfgs]
    trained_estimate = trained_seconds = 0.0
    print(f"[{study.name}] {len(cfgs)} runs, estimated {_duration(sum(estimates))} on one reference core", flush=True)
    for number, (planned, cfg) in enumerate(zip(planned_runs, cfgs), start=1):
        out = Path(cfg.out)
        entry = {"path": str(out), "study": study.name, "cell": planned.cell, "seed": planned.seed,
                 "fingerprint": fingerprint(cfg)}
        started = time.perf_counter()
        try:
            with records.record_lock(out):
                existing = _reusable(out, entry["fingerprint"])
                if existing is not None:
                    entries.append({**entry, "status": existing["status"], "trained": False,
                                    "wall_time_s": existing.get("wall_time_s")})
                    print(f"[{study.name}] {number}/{len(cfgs)} {planned.relpath}: {existing['status']} (reused)", flush=True)
                    continue
                info = run(cfg)
            entries.append({**entry, "status": info["status"], "trained": True, "wall_time_s": info["wall_time_s"]})
        except Exception as err:  # recorded as failed by runner.run (or refused); keep the batch going
            print(f"gradatlas.batch: run {out} failed: {err!r}", file=sys.stderr)
            entries.append({**entry, "status": "failed", "trained": True, "wall_time_s": None})
        trained_seconds += time.perf_counter() - started
        trained_estimate += estimates[number - 1]
        left = time_left(estimates[number:], trained_estimate, trained_seconds)
        print(f"[{study.name}] {number}/{len(cfgs)} {planned.relpath}: {entries[-1]['status']} in "
              f"{_duration(time.perf_counter() - started)}; "
              + (f"about {_duration(left)} left" if number < len(cfgs) else "batch done"), flush=True)
    return {"study": study.name, "scale": scale, "indices": list(indices), "runs": entries}


def time_left(remaining_estimates: list[float], trained_estimate: float, trained_seconds: float) -> float:
    """Seconds the batch has left: the remaining runs' estimates (``costs``, seconds on the
    reference CPU), scaled by how fast this machine trained the runs so far."""
    speed = trained_seconds / trained_estimate if trained_estimate > 0 else 1.0
    return sum(remaining_estimates) * speed


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_file")
    parser.add_argument("--scale", required=True)
    parser.add_argument("--runs", required=True, type=_indices,
                        help="comma-separated indices of the study's runs at this scale (the batch plan)")
    parser.add_argument("--manifest", required=True,
                        help="output: <results>/<scale>/batches/<study>/batch-<i>.json (records go to <results>)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--gpus", type=int, default=0,
                        help="GPUs of this machine shared among jobs: claim one, train on it alone (0: no claim)")
    parser.add_argument("--gpu-lock-dir", type=Path, default=None, help="where the GPU claims are (gradatlas.gpus)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    gpu = None
    if args.gpus > 0 and "SLURM_JOB_ID" in os.environ:
        print("gradatlas.batch: in a Slurm job: the GPUs Slurm allocated, no claim", flush=True)
    elif args.gpus > 0:
        slot = claim_gpu(args.gpus, args.gpu_lock_dir)
        use_gpu(slot)  # before anything starts CUDA
        gpu = {"slot": slot.index, "of": args.gpus, "CUDA_VISIBLE_DEVICES": os.environ["CUDA_VISIBLE_DEVICES"],
               "claimed_at": time.time()}
        print(f"gradatlas.batch: GPU {slot.index} of {args.gpus} (CUDA_VISIBLE_DEVICES={slot.index})", flush=True)
    start = time.perf_counter()
    results = Path(args.manifest).resolve().parents[3]
    try:
        manifest = run_batch(args.study_file, args.scale, args.runs, str(results), args.device)
    except (StudyError, ConfigError, ValueError, records.RecordError) as err:
        print(f"gradatlas.batch: error: {err}", file=sys.stderr)
        return 2
    manifest["wall_time_s"] = time.perf_counter() - start
    if gpu is not None:
        manifest["gpu"] = {**gpu, "released_at": time.time()}
    records.write_json_atomic(args.manifest, manifest)
    failed = [e["path"] for e in manifest["runs"] if e["status"] == "failed"]
    if failed:
        print(f"gradatlas.batch: {len(failed)} run(s) failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train one batch of a study's runs in one process: ``python -m gradatlas.workflow.batch``.

Starting Python and importing torch costs seconds, more than a small run trains; a batch
pays it once for many runs. Each run still gets its own atomic record, and a run whose
complete record (``records.is_complete``) already exists with the same config fingerprint is
reused, not retrained (a damaged one is retrained):
adding a value to a grid, or rerunning after ``kill -9``, trains only what is missing.
Runs of one shape (``config.stack_key``) train together as one stack (``runner.run_stack``),
at most ``--stack-size`` of them. The batch's manifest (written last, atomically) lists its
runs (with the stack each trained in), by record paths relative to the scale's root;
aggregation reads it. The log shows each stack as it
ends, with an estimate of the time the batch has left.
With ``--gpus N`` the job first claims one of N GPUs (``gpus``) and trains on it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from gradatlas.core import layout
from gradatlas.core.exit_status import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from gradatlas.core.files import RecordError, read_json, write_json_atomic
from gradatlas.run import records
from gradatlas.run.config import ConfigError, RunConfig, fingerprint, stack_key
from gradatlas.run.runner import run_stack
from gradatlas.workflow.costs import estimated_seconds, limit_stack_size, size_factor, stack_seconds
from gradatlas.workflow.gpus import claim_gpu, use_gpu
from gradatlas.workflow.studies import StudyError, compose_run, load_study
from gradatlas.workflow.tuning import brackets_text


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
    except RecordError:
        return None
    return info if info["fingerprint"] == wanted and info["status"] != "failed" else None


def group_stacks(cfgs: list, stack_size: int, gpu: bool = False) -> list[list[int]]:
    """Indices of ``cfgs`` grouped into stacks: runs of one ``config.stack_key`` in order, at
    most ``costs.limit_stack_size`` each, as ``studies.plan_stacks`` grouped the plan."""
    groups: dict[str, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        groups.setdefault(stack_key(cfg), []).append(i)
    stacks = []
    for members in groups.values():
        first = cfgs[members[0]]
        size = limit_stack_size(first.model.name, stack_size, gpu, size_factor(first))
        stacks.extend(members[j : j + size] for j in range(0, len(members), size))
    return stacks


def stack_estimate(run_seconds: float, size: int, cfg: RunConfig) -> float:
    """Estimated seconds of a stack of ``size`` runs like ``cfg`` (``costs.stack_seconds``;
    a run alone for one)."""
    return run_seconds if size == 1 else stack_seconds(run_seconds, size, cfg.model.name, size_factor(cfg))


def run_batch(study_file: str, scale: str, indices: list[int], results: str, device: str = "auto",
              sweep: bool = False, tuning_file: str | None = None, stack_size: int = 1,
              gpu: bool = False) -> dict:
    """Train (or reuse) the study's runs ``indices`` (the workflow's batch plan) and return
    the batch's manifest.

    With ``sweep``, the indices are into a tuned study's sweep; a tuned study's own runs train
    with the settings chosen for their cell, read from ``tuning_file`` (``gradatlas.workflow.tuning``).
    Runs of one shape train as one stack (``group_stacks``, at most ``stack_size``; ``gpu``:
    the planner's GPU limits). Failed runs are recorded with ``status: failed`` and listed;
    the others go on. The manifest names each record relative to ``<results>/<scale>``
    (``layout.ScalePaths.relative``), so it is to be written in ``<results>/<scale>/batches/``.
    """
    study = load_study(study_file, scale, validate=False)
    planned_runs = study.sweep if sweep else study.runs
    bad = [i for i in indices if not 0 <= i < len(planned_runs)]
    if bad or not indices:
        raise ValueError(f"study {study.name} at scale {scale} has {'sweep ' if sweep else ''}runs "
                         f"0..{len(planned_runs) - 1}; got {indices}")
    chosen = _chosen_trials(study, tuning_file) if study.tune and not sweep else {}
    planned_runs = [planned_runs[i] for i in indices]
    trials = [dict(planned.trial) if sweep else chosen.get(planned.cell, {}).get("chosen", {}) for planned in planned_runs]
    notes = [{} if sweep else _tuning_note(chosen.get(planned.cell)) for planned in planned_runs]
    entries = train_runs(study.name, planned_runs, trials, results, scale, device, stack_size, gpu, notes)
    return {"study": study.name, "scale": scale, "indices": list(indices), "runs": entries}


def _tuning_note(choice: dict | None) -> dict:
    """What a tuned run's manifest entry says of its cell's choice: the margin over the
    runner-up and the bracket (``tuning.select_trials``), which the summary tabulates."""
    if not choice:
        return {}
    return {"tuning": {"margin": choice.get("margin"), "bracket": brackets_text(choice)}}


def train_runs(study_name: str, planned_runs: list, trials: list[dict], results: str, scale: str,
               device: str = "auto", stack_size: int = 1, gpu: bool = False,
               notes: list[dict] | None = None) -> list[dict]:
    """Train (or reuse) ``planned_runs`` (``studies.PlannedRun``), each with its ``trials``
    settings on top, in stacks; return their manifest entries (``notes``: extra keys per entry)."""
    # The workflow owns <results>/<scale>/runs: a record of an older config of the cell, or a
    # damaged one, is replaced (overwrite); anything else there is still refused.
    cfgs = [compose_run({**planned.overrides(), **trial}, out=str(layout.run_dir(results, scale, planned.relpath)),
                        device=device, overwrite=True)
            for planned, trial in zip(planned_runs, trials)]
    estimates = [estimated_seconds(cfg) for cfg in cfgs]
    trained_estimate = trained_seconds = 0.0
    print(f"[{study_name}] {len(cfgs)} runs, estimated {_duration(sum(estimates))} on one reference core "
          f"(runs alone)", flush=True)
    labels = [planned.relpath for planned in planned_runs]
    scale_paths = layout.ScalePaths(results, scale)
    # Relative to <results>/<scale> (manifests.record_path): a copied or moved results
    # directory then names its own records, not the original's.
    entries: list[dict] = [
        {"path": scale_paths.relative(cfg.out), "study": study_name, "cell": planned.cell, "seed": planned.seed,
         "fingerprint": fingerprint(cfg), **({"trial": trial} if trial else {}), **note}
        for planned, trial, cfg, note in zip(planned_runs, trials, cfgs, notes or [{}] * len(cfgs))]
    stacks = group_stacks(cfgs, stack_size, gpu)
    done = 0
    for number, members in enumerate(stacks, start=1):
        started = time.perf_counter()
        with contextlib.ExitStack() as locks:
            locked, reusable = [], {}
            for i in members:
                try:
                    locks.enter_context(records.record_lock(cfgs[i].out))
                except Exception as err:  # refused (busy, unwritable): keep the batch going
                    print(f"gradatlas.workflow.batch: run {cfgs[i].out} failed: {err!r}", file=sys.stderr)
                    entries[i] = {**entries[i], "status": "failed", "trained": True, "wall_time_s": None}
                    continue
                locked.append(i)
                existing = _reusable(Path(cfgs[i].out), entries[i]["fingerprint"])
                if existing is not None:
                    reusable[i] = existing
            # A stack is reused whole or retrained whole: a member trained in a smaller stack
            # rounds differently, so a repaired record would not equal the one its stack made.
            train = [] if len(reusable) == len(locked) else locked
            for i, existing in reusable.items():
                if not train:
                    entries[i] = {**entries[i], "status": existing["status"], "trained": False,
                                  "wall_time_s": existing.get("wall_time_s")}
                    print(f"[{study_name}] {labels[i]}: {existing['status']} (reused)", flush=True)
            if train:
                try:
                    infos = run_stack([cfgs[i] for i in train])
                    for i, info in zip(train, infos):
                        entries[i] = {**entries[i], "status": info["status"], "trained": True,
                                      "wall_time_s": info["wall_time_s"], "stack": info["stack"]}
                except Exception as err:  # recorded as failed by runner.run_stack (or refused)
                    print(f"gradatlas.workflow.batch: stack of {[cfgs[i].out for i in train]} failed: {err!r}", file=sys.stderr)
                    for i in train:
                        entries[i] = {**entries[i], "status": "failed", "trained": True, "wall_time_s": None}
        done += len(members)
        if train:
            trained_seconds += time.perf_counter() - started
            trained_estimate += stack_estimate(estimates[train[0]], len(train), cfgs[train[0]])
        left = time_left([stack_estimate(estimates[s[0]], len(s), cfgs[s[0]]) for s in stacks[number:]],
                         trained_estimate, trained_seconds)
        counts = Counter(entries[i]["status"] for i in train)
        for i in train:
            if entries[i]["status"] != "ok":
                print(f"[{study_name}]   {labels[i]}: {entries[i]['status']}", flush=True)
        statuses = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "reused"
        print(f"[{study_name}] stack {number}/{len(stacks)}: {len(members)} runs ({statuses}) in "
              f"{_duration(time.perf_counter() - started)}, {done}/{len(cfgs)} runs done; "
              + (f"about {_duration(left)} left" if number < len(stacks) else "batch done"), flush=True)
    return entries


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


def _chosen_trials(study, tuning_file: str | None) -> dict[str, dict]:
    """Cell -> its choice (``tuning.select_trials``) from the study's tuning file."""
    if tuning_file is None:
        raise ValueError(f"study {study.name} chooses settings per cell (tune): pass --tuning")
    cells = read_json(tuning_file)["cells"]
    missing = sorted({run.cell for run in study.runs} - set(cells))
    if missing:
        raise ValueError(f"{tuning_file}: nothing chosen for cells {missing}")
    return cells


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
    parser.add_argument("--sweep", action="store_true", help="the indices are into a tuned study's sweep")
    parser.add_argument("--tuning", help="a tuned study's settings chosen per cell (gradatlas.workflow.tuning)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--stack-size", type=int, default=1,
                        help="train runs of one shape as stacks of at most this many (conf/workflow.yaml)")
    parser.add_argument("--stack-gpu", action="store_true", help="the stack size is a GPU's (no CPU cost limits)")
    parser.add_argument("--gpus", type=int, default=0,
                        help="GPUs of this machine shared among jobs: claim one, train on it alone (0: no claim)")
    parser.add_argument("--gpu-lock-dir", type=Path, default=None, help="where the GPU claims are (gradatlas.workflow.gpus)")
    args = parser.parse_args(argv)
    if args.stack_size < 1:
        parser.error("--stack-size must be at least 1")
    torch.set_num_threads(args.threads)
    gpu = None
    if args.gpus > 0 and "SLURM_JOB_ID" in os.environ:
        print("gradatlas.workflow.batch: in a Slurm job: the GPUs Slurm allocated, no claim", flush=True)
    elif args.gpus > 0:
        slot = claim_gpu(args.gpus, args.gpu_lock_dir)
        use_gpu(slot)  # before anything starts CUDA
        gpu = {"slot": slot.index, "of": args.gpus, "CUDA_VISIBLE_DEVICES": os.environ["CUDA_VISIBLE_DEVICES"],
               "claimed_at": time.time()}
        print(f"gradatlas.workflow.batch: GPU {slot.index} of {args.gpus} (CUDA_VISIBLE_DEVICES={slot.index})", flush=True)
    start = time.perf_counter()
    started_at = time.time()  # wall clock: the archive's wall time spans the first job to the paper
    paths = layout.ScalePaths.of_manifest(args.manifest)
    if paths.scale != args.scale:
        print(f"gradatlas.workflow.batch: error: --manifest {args.manifest} is not under a scale folder named "
              f"{args.scale!r} (--scale)", file=sys.stderr)
        return EXIT_BAD_INPUT
    results = paths.results
    try:
        manifest = run_batch(args.study_file, args.scale, args.runs, str(results), args.device,
                             sweep=args.sweep, tuning_file=args.tuning, stack_size=args.stack_size,
                             gpu=args.stack_gpu)
    except (StudyError, ConfigError, ValueError, RecordError) as err:
        print(f"gradatlas.workflow.batch: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    manifest["wall_time_s"] = time.perf_counter() - start
    manifest["started_at"], manifest["finished_at"] = started_at, time.time()
    if gpu is not None:
        manifest["gpu"] = {**gpu, "released_at": time.time()}
    try:
        write_json_atomic(args.manifest, manifest)
    except OSError as err:  # a full disk, say: no manifest, so the workflow sees the job fail
        print(f"gradatlas.workflow.batch: error: cannot write {args.manifest}: {err}", file=sys.stderr)
        return EXIT_FAILED
    failed = [e["path"] for e in manifest["runs"] if e["status"] == "failed"]
    if failed:
        print(f"gradatlas.workflow.batch: {len(failed)} run(s) failed: {failed}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

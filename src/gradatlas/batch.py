"""Train one batch of a study's runs in one process: ``python -m gradatlas.batch``.

Starting Python and importing torch costs seconds, more than a small run trains; a batch
pays it once for many runs. Each run still gets its own atomic record, and a run whose
complete record already exists with the same config fingerprint is reused, not retrained:
adding a value to a grid, or rerunning after ``kill -9``, trains only what is missing.
The batch's manifest (written last, atomically) lists its runs; aggregation reads it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from gradatlas import records
from gradatlas.config import ConfigError, fingerprint
from gradatlas.runner import run
from gradatlas.studies import StudyError, compose_run, load_study


def _indices(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated run indices, got {text!r}") from None


def run_batch(study_file: str, scale: str, indices: list[int], results: str, device: str = "auto",
              sweep: bool = False, tuning_file: str | None = None) -> dict:
    """Train (or reuse) the study's runs ``indices`` (the workflow's batch plan) and return
    the batch's manifest.

    With ``sweep``, the indices are into a tuned study's sweep; a tuned study's own runs train
    with the settings chosen for their cell, read from ``tuning_file`` (``gradatlas.tuning``). Failed runs are recorded with ``status: failed`` and listed; the
    others go on.
    """
    study = load_study(study_file, scale, validate=False)
    planned_runs = study.sweep if sweep else study.runs
    bad = [i for i in indices if not 0 <= i < len(planned_runs)]
    if bad or not indices:
        raise ValueError(f"study {study.name} at scale {scale} has {'sweep ' if sweep else ''}runs "
                         f"0..{len(planned_runs) - 1}; got {indices}")
    chosen = _chosen_trials(study, tuning_file) if study.tune and not sweep else {}
    entries = []
    for planned in (planned_runs[i] for i in indices):
        out = Path(results) / scale / "runs" / planned.relpath
        trial = dict(planned.trial) if sweep else chosen.get(planned.cell, {})
        cfg = compose_run({**planned.overrides(), **trial}, out=str(out), device=device)
        entry = {"path": str(out), "study": study.name, "cell": planned.cell, "seed": planned.seed,
                 "fingerprint": fingerprint(cfg), **({"trial": trial} if trial else {})}
        existing = records.read_info(out)
        if existing and existing.get("fingerprint") == entry["fingerprint"] and existing["status"] != "failed":
            entries.append({**entry, "status": existing["status"], "trained": False,
                            "wall_time_s": existing.get("wall_time_s")})
            continue
        try:
            info = run(cfg)
            entries.append({**entry, "status": info["status"], "trained": True, "wall_time_s": info["wall_time_s"]})
        except Exception as err:  # recorded as failed by runner.run; keep the batch going
            print(f"gradatlas.batch: run {out} failed: {err!r}", file=sys.stderr)
            entries.append({**entry, "status": "failed", "trained": True, "wall_time_s": None})
        print(f"[{study.name}] {planned.relpath}: {entries[-1]['status']}", flush=True)
    return {"study": study.name, "scale": scale, "indices": list(indices), "runs": entries}


def _chosen_trials(study, tuning_file: str | None) -> dict[str, dict]:
    if tuning_file is None:
        raise ValueError(f"study {study.name} chooses settings per cell (tune): pass --tuning")
    cells = records.read_json(tuning_file)["cells"]
    missing = sorted({run.cell for run in study.runs} - set(cells))
    if missing:
        raise ValueError(f"{tuning_file}: nothing chosen for cells {missing}")
    return {cell: choice["chosen"] for cell, choice in cells.items()}


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
    parser.add_argument("--tuning", help="a tuned study's settings chosen per cell (gradatlas.tuning)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results = Path(args.manifest).resolve().parents[3]
    try:
        manifest = run_batch(args.study_file, args.scale, args.runs, str(results), args.device,
                             sweep=args.sweep, tuning_file=args.tuning)
    except (StudyError, ConfigError, ValueError, records.RecordError) as err:
        print(f"gradatlas.batch: error: {err}", file=sys.stderr)
        return 2
    manifest["wall_time_s"] = time.perf_counter() - start
    records.write_json_atomic(args.manifest, manifest)
    failed = [e["path"] for e in manifest["runs"] if e["status"] == "failed"]
    if failed:
        print(f"gradatlas.batch: {len(failed)} run(s) failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A tuned study's choice per cell, bracketed: ``python -m gradatlas.workflow.extend`` (the ``tune`` job).

Reads the study's sweep manifests, chooses per cell (``tuning.select_trials``), and while a
cell's best learning rate sits at an end of its list, trains that cell's sweep runs one step
beyond it (``tuning.extension_trials``; through ``batch.train_runs``, so complete records
are reused and a rerun trains only what is missing), then chooses again, up to the study's
``tune.extend`` steps per side. It writes the choices (``--out``) and, last, a manifest of
the extension runs it trained or reused (``--manifest``), which the workflow checks like any
batch manifest: a damaged extension record makes this job run again.

Why this job trains the extension runs, not a Snakemake checkpoint: which cells extend is
known only after the sweep, and an extension can call for another (two rounds, each after
the last). As checkpoints that is one checkpoint per round with DAG re-evaluation after
each; here the DAG stays what it is at parse time (sweep jobs -> tune -> the study's
batches), a dry run lists the same jobs a run executes, and the extension runs are few (the
plan counts their expected cost in this job: ``gradatlas.workflow.plan``).
"""

from __future__ import annotations

import argparse
import sys

from gradatlas.core import layout
from gradatlas.core.exit_status import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from gradatlas.core.files import RecordError, write_json_atomic
from gradatlas.run.config import ConfigError
from gradatlas.workflow import tuning
from gradatlas.workflow.batch import train_runs
from gradatlas.workflow.studies import Study, StudyError, load_study, sweep_run


def extension_runs(study: Study, chosen: dict[str, dict]) -> tuple[list, list[dict]]:
    """The sweep runs (``studies.PlannedRun``) and trials that the choices ask for next."""
    factors = [name for name, _ in study.tune.choices]
    planned, trials = [], []
    for cell, choice in chosen.items():
        for trial in tuning.extension_trials(choice, factors):
            for seed in study.tune.sweep_seeds():
                planned.append(sweep_run(study, cell, trial, seed))
                trials.append(trial)
    return planned, trials


def bracket(study: Study, rows: list[dict], train, row_of) -> tuple[dict[str, dict], list[dict]]:
    """Choose per cell, extending lists at their ends while allowed.

    Args:
        study: the tuned study at its scale.
        rows: its sweep runs' results (``tuning.sweep_rows``).
        train: ``(planned runs, trials) -> manifest entries`` of those runs, trained or reused.
        row_of: a manifest entry -> its row for ``tuning.select_trials``.

    Returns:
        The final choices (``tuning.select_trials``) and the extension runs' manifest entries.
    """
    choices = dict(study.tune.choices)
    entries: list[dict] = []
    # Each round extends at least one side of one cell's list, and no side more than
    # ``tune.extend`` times: the loop ends.
    while True:
        chosen = tuning.select_trials(rows, choices, study.tune.extend)
        planned, trials = extension_runs(study, chosen)
        if not planned:
            return chosen, entries
        new = train(planned, trials)
        entries.extend(new)
        rows = rows + [row_of(entry) for entry in new]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_file")
    parser.add_argument("--scale", required=True)
    parser.add_argument("--manifests", nargs="+", required=True, help="the study's sweep batch manifests")
    parser.add_argument("--out", required=True, help="output: <results>/<scale>/tuning/<study>.json")
    parser.add_argument("--manifest", required=True,
                        help="output: the extension runs' manifest, <results>/<scale>/batches/<study>/extend-0.json")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--stack-size", type=int, default=1)
    parser.add_argument("--stack-gpu", action="store_true")
    args = parser.parse_args(argv)
    try:
        paths = layout.ScalePaths.of_manifest(args.manifest)
        if paths.scale != args.scale:
            raise ValueError(f"--manifest {args.manifest} is not under a scale folder named {args.scale!r} (--scale)")
        study = load_study(args.study_file, args.scale, validate=False)
        if study.tune is None:
            raise ValueError(f"study {study.name} tunes nothing (no tune:)")
        rows = tuning.sweep_rows(args.manifests)

        def train(planned, trials):
            return train_runs(study.name, planned, trials, str(paths.results), args.scale, args.device,
                              args.stack_size, args.stack_gpu)

        chosen, entries = bracket(study, rows, train, lambda entry: tuning.sweep_row(entry, paths.resolve(entry["path"])))
    except (StudyError, ConfigError, RecordError, KeyError, ValueError) as err:
        print(f"gradatlas.workflow.extend: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    write_json_atomic(args.out, {"cells": chosen})
    write_json_atomic(args.manifest, {"study": study.name, "scale": args.scale, "runs": entries})
    print("\n".join(tuning.describe(chosen)))
    failed = [e["path"] for e in entries if e.get("status") == "failed"]
    if failed:
        print(f"gradatlas.workflow.extend: {len(failed)} extension run(s) failed: {failed}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

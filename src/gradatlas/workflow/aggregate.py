"""Aggregate run records into tidy tables: ``python -m gradatlas.workflow.aggregate``.

``runs`` has one row per run (grid factors, status, scalar outcomes, the stack it trained in
and its provenance); ``layers`` and ``timesteps`` are the long per-run tables with the run's
identity and grid factors added as columns; ``steps`` holds the step tables of the studies
whose loss curves the figures draw (``STEP_STUDIES``). The summary is everything the analysis
reads, so that the paper can be rebuilt from it alone (an archived scale has no run records).
The tabulating functions are pure; reading and writing go through ``records``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Iterable

import numpy as np
import pandas as pd

from gradatlas.core import layout
from gradatlas.core.exit_status import EXIT_BAD_INPUT, EXIT_OK
from gradatlas.core.files import RecordError, write_table
from gradatlas.core.names import FACTORS
from gradatlas.run import records
from gradatlas.workflow.manifests import load_batches

ID_COLUMNS = ("run", "study", "cell", "seed")
OUTCOMES = ("status", "diverged_step", "steps", "steps_done", "final_train_loss", "final_train_metric",
            "test_loss", "test_metric", "val_loss", "val_metric", "metric", "chance", "wall_time_s", "device",
            "n_params", "underflow_probes")
# The figures draw these studies' loss and gradient-norm curves step by step, and claim 17 reads
# the steps isometry_training's runs take to reach a training loss; the step tables of the other
# studies stay in their records (all of them would be most of the summary's size).
STEP_STUDIES = ("clipping_mlp", "clipping_rnn", "isometry_training")
# Factors a run record may leave unset (None): kept as float columns with NaN.
NUMERIC_FACTORS = ("depth", "width", "width_alt", "slope", "gain", "init_std", "bias", "bias_std", "forget_bias", "length",
                   "lr", "momentum", "epochs", "max_steps", "batch_size", "clip_value")


def tuning_columns(entry: dict[str, Any]) -> dict[str, Any]:
    """A tuned run's cell's choice (its batch-manifest entry's ``tuning``): the validation
    margin of the chosen trial over the runner-up, and where the choice lies in its candidate
    list (``tuning.BRACKETS``); NaN and None for a run of an untuned study."""
    note = entry.get("tuning") or {}
    margin = note.get("margin")
    return {"tune_margin": np.nan if margin is None else float(margin), "tune_bracket": note.get("bracket")}


def run_identity(entry: dict[str, Any]) -> dict[str, Any]:
    """The identity columns of a run from its batch-manifest entry."""
    return {"run": f"{entry['study']}/{entry['cell']}/seed-{entry['seed']}", "study": entry["study"],
            "cell": entry["cell"], "seed": int(entry["seed"])}


def _factor_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for name in FACTORS:
        if name not in frame:
            frame[name] = np.nan
        if name in NUMERIC_FACTORS:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return frame


def step_summary(steps: pd.DataFrame) -> dict[str, float]:
    """Scalar summaries of a run's step table: first loss, gradient-norm range, clipping share."""
    if steps.empty:
        return {"first_loss": np.nan, "max_grad_norm": np.nan, "initial_grad_norm": np.nan, "clipped_frac": np.nan}
    finite = steps["grad_norm"].replace([np.inf, -np.inf], np.nan)
    return {
        "first_loss": float(steps["loss"].iloc[0]),
        "initial_grad_norm": float(steps["grad_norm"].iloc[0]),
        "max_grad_norm": float(finite.max()) if finite.notna().any() else np.inf,
        "clipped_frac": float(steps["clipped"].mean()),
    }


def provenance(info: dict[str, Any]) -> dict[str, Any]:
    """Where a run came from: the code's commit, torch, and the stack it trained in (a rerun
    must retrain the whole stack to reproduce it bit for bit)."""
    stack = info.get("stack") or {}
    versions = info.get("versions", {})
    return {"git_commit": info.get("git_commit"), "torch_version": versions.get("torch"),
            "python_version": versions.get("python"),
            "stack_id": stack.get("id"), "stack_size": stack.get("size"), "stack_index": stack.get("index")}


def tabulate_runs(loaded: Iterable[tuple[dict[str, Any], records.RunRecord]]) -> pd.DataFrame:
    """One row per run: identity, grid factors, outcomes, step summaries and provenance."""
    rows = []
    for entry, record in loaded:
        row = {**run_identity(entry), **record.info.get("factors", {})}
        row.update({key: record.info.get(key) for key in OUTCOMES})
        row.update(step_summary(record.steps))
        row.update(provenance(record.info))
        row.update(tuning_columns(entry))
        rows.append(row)
    frame = _factor_frame(rows)
    for column in ("test_loss", "test_metric", "final_train_loss", "final_train_metric", "diverged_step",
                   "underflow_probes"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    ordered = [*ID_COLUMNS, *FACTORS.keys()]
    ordered.remove("seed")  # seed is an identity column already
    rest = [c for c in frame.columns if c not in ordered]
    return frame[list(dict.fromkeys([*ordered, *rest]))]


def tabulate_long(
    loaded: Iterable[tuple[dict[str, Any], records.RunRecord]], table: str, runs: pd.DataFrame
) -> pd.DataFrame:
    """Concatenate the per-run long tables (``layers`` or ``timesteps``) with run columns added.

    The grid factors come from ``runs`` (joined on ``run``), so both tables agree.
    """
    parts = []
    for entry, record in loaded:
        part = getattr(record, table)
        if part is None or part.empty:
            continue
        part = part.copy()
        part.insert(0, "run", run_identity(entry)["run"])
        parts.append(part)
    if not parts:
        columns = layout.LAYER_COLUMNS if table == "layers" else layout.TIMESTEP_COLUMNS
        return pd.DataFrame(columns=["run", *runs.columns.drop("run"), *columns])
    long = pd.concat(parts, ignore_index=True)
    # FACTORS order, not a set's: the column order must not depend on the string hash seed
    factors = runs[["run", "study", "cell", "seed", *(k for k in FACTORS if k != "seed"), "status"]]
    merged = long.merge(factors, on="run", how="left", validate="many_to_one")
    for column in ("run", "study", "cell", "quantity", "name", "status", "activation", "init", "norm", "model", "data", "clip", "optimizer"):
        if column in merged:
            merged[column] = merged[column].astype("category")
    return merged


def tabulate_steps(loaded: Iterable[tuple[dict[str, Any], records.RunRecord]]) -> pd.DataFrame:
    """The step tables of the runs of ``STEP_STUDIES``, stacked long with a ``run`` column."""
    parts = []
    for entry, record in loaded:
        if entry["study"] in STEP_STUDIES:
            part = record.steps.copy()
            part.insert(0, "run", run_identity(entry)["run"])
            parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["run", *layout.STEP_COLUMNS])
    return pd.concat(parts, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    """Read the records listed by batch manifests and write the summary tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", nargs="+", required=True)
    parser.add_argument("--runs", required=True, help="output: runs table")
    parser.add_argument("--layers", required=True, help="output: layers table")
    parser.add_argument("--timesteps", required=True, help="output: timesteps table")
    parser.add_argument("--steps", required=True, help=f"output: step tables of {', '.join(STEP_STUDIES)}")
    args = parser.parse_args(argv)
    try:
        loaded = load_batches(args.manifests)
    except RecordError as err:
        print(f"gradatlas.workflow.aggregate: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    runs = tabulate_runs(loaded)
    write_table(runs, args.runs)
    write_table(tabulate_long(loaded, "layers", runs), args.layers)
    write_table(tabulate_long(loaded, "timesteps", runs), args.timesteps)
    write_table(tabulate_steps(loaded), args.steps)
    counts = runs["status"].value_counts().to_dict()
    print(f"aggregated {len(runs)} runs: {counts}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

"""Verify an archived scale by retraining a sample of its runs: ``python -m gradatlas.workflow.verify``.

A seeded random sample of the archive's runs is retrained, each with the whole stack it was
trained in (a member of another stack rounds differently, ``loop.train_stack``), on this
machine, from the study files and the archived tuning choices. Every quantity the summary
holds for a run (its outcomes, every layer and time-step probe) is compared with the archive:

* step-0 quantities (probes at step 0, the first loss and gradient norm) are computed before
  any update, so they must agree within ``STEP0_RTOL`` relative on any CPU; a larger
  difference fails the verification;
* later quantities are reported as differences: training is chaotic, and another instruction
  set (AVX-512 against AVX2) rounds differently and moves them.

A probe row the archive holds that the retrained run's probe schedule no longer records (a
quantity measured at fewer steps since the archive was made, ``probes.recorded_steps``) is
no difference: it is counted per quantity as "not recorded by the new schedule". A row that
only one side holds although both schedules record it is a difference.

Each run gets a verdict: ``identical`` (every value equal), ``within tolerance`` (every value
within ``STEP0_RTOL`` relative) or ``differs``. The report (JSON and Markdown) names the
machine, the archive's machine and the sample; ``--into-archive`` also writes it into the
archive (``verify.json``), where the paper's reproducibility appendix reads it
(``tex`` writes its macros).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gradatlas.core import layout
from gradatlas.core.exit_status import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from gradatlas.core.files import RecordError, read_json, write_json_atomic, write_text
from gradatlas.core.provenance import cpu_model
from gradatlas.workflow import aggregate, archive
from gradatlas.workflow.manifests import load_batches

STEP0_RTOL = 1e-5
# Outcome columns of the runs table compared value by value; the step-0 ones must agree.
STEP0_OUTCOMES = ("first_loss", "initial_grad_norm")
LATER_OUTCOMES = ("final_train_loss", "final_train_metric", "test_loss", "test_metric", "val_loss", "val_metric",
                  "diverged_step", "steps_done", "max_grad_norm", "clipped_frac", "underflow_probes")
# A mean over units and examples can cancel to nearly 0 (1e-13 where the activations are of
# order 0.1): its rounding error scales with the activations, not with the mean, so another
# instruction set moves such a mean by far more than STEP0_RTOL of itself (bench/README.md,
# "ledger_diff.py"). It is compared relative to the layer's activation spread instead.
MEAN_SCALE = {"act_mean": "act_std"}
# How the long tables' rows are matched between the archive and the retrained runs.
KEYS = {"layers": ["run", "step", "layer", "name", "quantity"], "timesteps": ["run", "step", "t", "quantity"]}


def relative_difference(a: np.ndarray, b: np.ndarray, scale: np.ndarray | float = 0.0) -> np.ndarray:
    """|a - b| / max(|a|, |b|, scale) elementwise; 0 where both are equal (NaN = NaN, inf =
    inf), inf where only one is NaN or infinite. ``scale`` is the magnitude the value was
    computed from, where that exceeds the value itself (see ``MEAN_SCALE``)."""
    a, b = np.asarray(a, dtype="float64"), np.asarray(b, dtype="float64")
    scale = np.nan_to_num(np.asarray(scale, dtype="float64"), nan=0.0, posinf=0.0)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), scale)
    rel = np.where(same, 0.0, rel)
    return np.where(np.isnan(rel), np.inf, rel)


def sample_runs(runs: pd.DataFrame, n: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """A seeded sample of ``n`` runs and the stacks to retrain for them (whole, in stack order)."""
    names = sorted(runs["run"])
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(names, size=min(n, len(names)), replace=False).tolist())
    by_run = runs.set_index("run")
    stacks: dict[Any, list[str]] = {}
    for run in chosen:
        stack = by_run.at[run, "stack_id"] if "stack_id" in by_run else None
        if stack is None or (isinstance(stack, float) and np.isnan(stack)):
            stacks[("alone", run)] = [run]
            continue
        members = runs[(runs["study"] == by_run.at[run, "study"]) & (runs["stack_id"] == stack)]
        stacks[stack] = members.sort_values("stack_index")["run"].tolist()
    return chosen, list(stacks.values())


def retrain(stack: list[str], runs: pd.DataFrame, scale: str, studies: Path, archive_dir: Path, work: Path) -> Path:
    """Retrain one stack into ``work`` (``batch.run_batch``); returns its batch manifest."""
    from gradatlas.workflow.batch import run_batch
    from gradatlas.workflow.studies import load_study

    rows = runs.set_index("run").loc[stack]
    study_name = rows["study"].iloc[0]
    study_file = studies / f"{layout.path_token(study_name)}.yaml"
    study = load_study(study_file, scale, validate=False)
    index = {(planned.cell, planned.seed): i for i, planned in enumerate(study.runs)}
    try:
        indices = [index[(cell, int(seed))] for cell, seed in zip(rows["cell"], rows["seed"])]
    except KeyError as err:
        raise archive.ArchiveError(f"{study_file}: no run {err} at scale {scale}: the study changed since "
                                   "the archive was made") from None
    tuning = archive_dir / "tuning" / f"{study_name}.json"
    manifest = run_batch(str(study_file), scale, indices, str(work), device="cpu",
                         tuning_file=str(tuning) if study.tune else None, stack_size=len(stack))
    # Where the workflow keeps a batch's manifest: it names its records relative to the scale.
    path = layout.ScalePaths(work, scale).batch_manifest(study_name, "batch", len(list(work.glob("*/batches/*/*.json"))))
    write_json_atomic(path, manifest)
    return path


# Steps at which a run's schedule records each quantity: run -> (table, quantity) -> steps.
Schedules = dict[str, dict[tuple[str, str], set[int]]]


def compare_runs(archived: dict[str, pd.DataFrame], retrained: dict[str, pd.DataFrame],
                 schedules: Schedules | None = None) -> pd.DataFrame:
    """Per retrained run: values compared, identical ones, the largest relative difference at
    step 0 (and which quantity, with both values) and later, the verdict, and per quantity the
    archived rows the retrained run's schedule does not record (``not_recorded``; ``schedules``
    gives each run's, ``recorded_steps``; a run without one records every archived row)."""
    rows = []
    for run, new in retrained["runs"].set_index("run").iterrows():
        old = archived["runs"].set_index("run").loc[run]
        # Per group: labels, archived values, retrained values, relative differences.
        step0 = [([c], [old[c]], [new[c]], relative_difference(old[c], new[c])) for c in STEP0_OUTCOMES]
        later = [relative_difference(old[c], new[c]) for c in LATER_OUTCOMES if c in new and c in old]
        later.append(np.array(0.0 if old["status"] == new["status"] else np.inf))
        not_recorded: dict[str, int] = {}
        for table, keys in KEYS.items():
            a = archived[table][archived[table]["run"].astype(str) == run]
            b = retrained[table][retrained[table]["run"].astype(str) == run]
            merged = _merge(a, b, keys)
            unrecorded = _not_recorded(merged, table, (schedules or {}).get(run))
            for quantity, count in merged.loc[unrecorded, "quantity"].value_counts().items() if unrecorded.any() else ():
                not_recorded[f"{table}: {quantity}"] = int(count)
            merged = merged[~unrecorded]
            rel = relative_difference(merged["value_archived"], merged["value_retrained"], _scale(merged, keys))
            rel[merged["one_sided"].to_numpy(dtype=bool)] = np.inf
            at0 = (merged["step"] == 0).to_numpy()
            where = "layer" if table == "layers" else "t"
            labels = [f"{table}: {q} at {where} {w}" for q, w in zip(merged.get("quantity", []), merged.get(where, []))]
            step0.append(([label for label, z in zip(labels, at0) if z], merged["value_archived"][at0].tolist(),
                          merged["value_retrained"][at0].tolist(), rel[at0]))
            later.append(rel[~at0])
        step0_all = np.concatenate([np.atleast_1d(group[3]) for group in step0])
        later_all = np.concatenate([np.atleast_1d(x) for x in later])
        every = np.concatenate([step0_all, later_all])
        verdict = ("identical" if (every == 0).all() else
                   "within tolerance" if (every <= STEP0_RTOL).all() else "differs")
        worst = _worst(step0)
        rows.append({"run": run, "values": int(every.size), "identical_values": int((every == 0).sum()),
                     "step0_values": int(step0_all.size),
                     "step0_max_rel": float(step0_all.max(initial=0.0)),
                     "step0_worst": worst,
                     "later_max_rel": float(later_all.max(initial=0.0)),
                     "step0_ok": bool((step0_all <= STEP0_RTOL).all()), "verdict": verdict,
                     "not_recorded": dict(sorted(not_recorded.items())),
                     "status": new["status"], "archived_status": old["status"]})
    return pd.DataFrame(rows)


def _not_recorded(merged: pd.DataFrame, table: str, schedule: dict[tuple[str, str], set[int]] | None) -> np.ndarray:
    """Per merged row, whether only the archive holds it and the retrained run's ``schedule``
    does not record its quantity at its step (a gate quantity by its name without the gate)."""
    if schedule is None or merged.empty:
        return np.zeros(len(merged), dtype=bool)
    archived_only = (merged["_merge"] == "left_only").to_numpy()
    outside = [(table, quantity.split(".", 1)[0]) in schedule and step not in schedule[(table, quantity.split(".", 1)[0])]
               for quantity, step in zip(merged["quantity"].astype(str), merged["step"].astype(int))]
    return archived_only & np.array(outside, dtype=bool)


def _scale(merged: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """Per row, the magnitude a mean-like quantity is compared against (``MEAN_SCALE``): the
    archived value of its spread at the same run, step and place; 0 for other quantities."""
    scale = np.zeros(len(merged))
    if merged.empty or "quantity" not in merged:
        return scale
    place = [k for k in keys if k != "quantity"]
    for mean, spread in MEAN_SCALE.items():
        spreads = merged.loc[merged["quantity"] == spread, [*place, "value_archived"]]
        rows = merged["quantity"] == mean
        if not rows.any() or spreads.empty:
            continue
        joined = merged.loc[rows, place].merge(spreads, on=place, how="left")
        scale[rows.to_numpy()] = np.abs(joined["value_archived"].to_numpy(dtype="float64"))
    return scale


def _worst(groups: list) -> str:
    """The step-0 value that differs most: which quantity, and both values."""
    best, text = 0.0, ""
    for labels, olds, news, rel in groups:
        rel = np.atleast_1d(rel)
        if rel.size and rel.max() > best:
            i = int(rel.argmax())
            best, text = float(rel[i]), f"{labels[i]}: {olds[i]!r} archived, {news[i]!r} retrained"
    return text


def _merge(a: pd.DataFrame, b: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows matched on ``keys``, with ``one_sided`` marking a row that only one side has
    (a difference whatever its value)."""
    if a.empty and b.empty:
        return pd.DataFrame({"step": [], "value_archived": [], "value_retrained": [], "one_sided": []})
    frames = []
    for frame in (a, b):
        frame = frame[[*keys, "value"]].copy()
        for key in keys:
            frame[key] = frame[key].astype(str)  # categories, ints and an empty side all match as text
        frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
        frames.append(frame)
    merged = frames[0].merge(frames[1], on=keys, how="outer", suffixes=("_archived", "_retrained"), indicator=True)
    merged["one_sided"] = merged["_merge"] != "both"
    merged["step"] = pd.to_numeric(merged["step"])
    return merged


def verify(archive_dir: Path, scale: str, studies: Path, n: int, seed: int, work: Path) -> dict[str, Any]:
    """Retrain a sample of the archive's runs and compare them with it; returns the report."""
    problems = archive.check(archive_dir)
    if problems:
        raise archive.ArchiveError(f"{archive_dir}: damaged: {problems[:3]}")
    archived = {name: pd.read_parquet(archive_dir / "summary" / f"{name}.parquet") for name in ("runs", *KEYS)}
    chosen, stacks = sample_runs(archived["runs"], n, seed)
    work.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="retrain-", dir=work))
    try:
        manifests = [retrain(stack, archived["runs"], scale, studies, archive_dir, scratch) for stack in stacks]
        loaded = load_batches([str(p) for p in manifests])
        new_runs = aggregate.tabulate_runs(loaded)
        retrained = {"runs": new_runs, **{t: aggregate.tabulate_long(loaded, t, new_runs) for t in KEYS}}
        schedules = {aggregate.run_identity(entry)["run"]: _schedule(record) for entry, record in loaded}
    finally:
        shutil.rmtree(scratch)  # made here; the comparison below is the product
    table = compare_runs(archived, retrained, schedules)
    made = archive.read_manifest(archive_dir)["provenance"]
    counts = table["verdict"].value_counts()
    return {
        "archive": str(archive_dir), "scale": scale, "sample": n, "seed": seed,
        "sampled_runs": chosen, "retrained_runs": int(len(table)), "stacks": len(stacks),
        "identical": int(counts.get("identical", 0)), "within_tolerance": int(counts.get("within tolerance", 0)),
        "differs": int(counts.get("differs", 0)),
        "step0_ok": bool(table["step0_ok"].all()), "step0_rtol": STEP0_RTOL,
        "step0_max_rel": float(table["step0_max_rel"].max()), "later_max_rel": float(table["later_max_rel"].max()),
        "machine": {"cpu_model": cpu_model(), "cpu_capability": _capability()},
        "archive_machine": {"cpu_model": made.get("cpu_model"), "cpu_capability": made.get("cpu_capability")},
        "same_machine_kind": cpu_model() == made.get("cpu_model") and _capability() == made.get("cpu_capability"),
        "not_recorded": _total_not_recorded(table),
        "runs": table.to_dict(orient="records"),
    }


def _schedule(record) -> dict[tuple[str, str], set[int]]:
    """The steps the retrained run's probe config records each quantity at."""
    from gradatlas.run.config import ProbeConfig
    from gradatlas.run.probes import recorded_steps

    return recorded_steps(ProbeConfig(**record.config["probe"]), int(record.info["steps"]))


def _total_not_recorded(table: pd.DataFrame) -> dict[str, int]:
    """Per quantity, the archived rows of all retrained runs that the new schedule does not record."""
    total: dict[str, int] = {}
    for counts in table.get("not_recorded", []):
        for quantity, count in counts.items():
            total[quantity] = total.get(quantity, 0) + count
    return dict(sorted(total.items()))


def _capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability()


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: the summary, then one line per retrained run."""
    lines = [
        f"# Verification of {report['archive']}",
        "",
        f"Sample: {report['sample']} runs (seed {report['seed']}), retrained with their whole stacks: "
        f"{report['retrained_runs']} runs in {report['stacks']} stacks.",
        f"This machine: {report['machine']['cpu_model']} ({report['machine']['cpu_capability']}); "
        f"the archive's: {report['archive_machine']['cpu_model']} ({report['archive_machine']['cpu_capability']}).",
        f"Verdicts: {report['identical']} identical, {report['within_tolerance']} within tolerance, "
        f"{report['differs']} differ. Step 0 within {report['step0_rtol']:g} relative: "
        f"{'yes' if report['step0_ok'] else 'NO'} (largest {report['step0_max_rel']:.3g}); "
        f"largest later difference {report['later_max_rel']:.3g}.",
        "",
    ]
    if report.get("not_recorded"):
        lines += ["Archived rows not recorded by the new schedule (no difference): "
                  + ", ".join(f"{quantity} {count}" for quantity, count in report["not_recorded"].items()) + ".", ""]
    lines += [
        "| run | verdict | values | identical | step-0 max rel | later max rel | largest step-0 difference |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in report["runs"]:
        lines.append(f"| {row['run']} | {row['verdict']} | {row['values']} | {row['identical_values']} | "
                     f"{row['step0_max_rel']:.3g} | {row['later_max_rel']:.3g} | {row['step0_worst'] or '-'} |")
    return "\n".join(lines) + "\n"


def tex_macros(report: dict[str, Any] | None) -> str:
    """The macros of the paper's reproducibility appendix (``verification.tex``)."""
    from gradatlas.analysis.tables import numbers_macros

    if report is None:
        return numbers_macros({"GAVerified": "no"}) + verification_text(None)
    return numbers_macros({
        "GAVerified": "yes", "GAVerifySample": report["sample"], "GAVerifyRuns": report["retrained_runs"],
        "GAVerifyStacks": report["stacks"], "GAVerifyIdentical": report["identical"],
        "GAVerifyTolerance": report["within_tolerance"], "GAVerifyDiffers": report["differs"],
        "GAVerifyStepZero": "yes" if report["step0_ok"] else "no",
        "GAVerifyStepZeroMax": f"{report['step0_max_rel']:.2g}", "GAVerifyLaterMax": f"{report['later_max_rel']:.2g}",
        "GAVerifyMachine": f"{report['machine']['cpu_model']} ({report['machine']['cpu_capability']})",
    }) + verification_text(report)


def verification_text(report: dict[str, Any] | None) -> str:
    """``\\GAVerificationText``: the reproducibility section's paragraph on the last verification
    (LaTeX), so that the prose prints what is on record and never types a count."""
    if report is None:
        body = (r"No verification of these runs is on record: \texttt{snakemake verify -{}-cores 2 -{}-config "
                r"scale=\GAScale} retrains a seeded sample of an archived scale and compares.")
    else:
        body = (r"The last verification retrained a seeded sample of \GAVerifySample{} archived runs, with the "
                r"stacks they were trained in (\GAVerifyRuns{} runs in \GAVerifyStacks{} stacks), on "
                r"\GAVerifyMachine{}: \GAVerifyIdentical{} were identical to the archive in every recorded "
                rf"quantity, \GAVerifyTolerance{{}} agreed within $\num{{{STEP0_RTOL:g}}}$ relative and "
                r"\GAVerifyDiffers{} differed (largest relative difference after the first step: "
                rf"\GAVerifyLaterMax). Every quantity at initialization agreed within $\num{{{STEP0_RTOL:g}}}$ "
                r"relative: \GAVerifyStepZero{} (largest difference \GAVerifyStepZeroMax).")
    return "\\newcommand{\\GAVerificationText}{" + body + "}\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (1 if a step-0 quantity differs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="retrain a sample and compare it with the archive")
    p.add_argument("--archive", type=Path, required=True)
    p.add_argument("--scale", required=True)
    p.add_argument("--studies", type=Path, default=Path("conf/studies"))
    p.add_argument("--sample", type=int, required=True, help="runs to sample (their stacks are retrained whole)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, required=True, help="where the retraining happens (removed after)")
    p.add_argument("--report", type=Path, required=True, help="output: the report (JSON; Markdown beside it)")
    p.add_argument("--into-archive", action="store_true", help="also write the report into the archive")
    p = sub.add_parser("tex", help="the paper's verification macros")
    p.add_argument("--report", type=Path, help="a verification report; none: the scale is not verified")
    p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "tex":
        try:
            report = read_json(args.report) if args.report and args.report.exists() else None
        except RecordError as err:
            print(f"gradatlas.workflow.verify: error: {err}", file=sys.stderr)
            return EXIT_BAD_INPUT
        write_text(args.out, tex_macros(report))
        return EXIT_OK
    if args.sample < 1:
        parser.error("--sample must be at least 1")
    try:
        report = verify(args.archive, args.scale, args.studies, args.sample, args.seed, args.work)
    except (archive.ArchiveError, RecordError, ValueError) as err:
        print(f"gradatlas.workflow.verify: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    text = json.dumps(report, indent=1) + "\n"
    write_text(args.report, text)
    write_text(args.report.with_suffix(".md"), markdown(report))
    if args.into_archive:
        write_text(args.archive / "verify.json", text)
        write_text(args.archive / "verify.md", markdown(report))
    print(f"verified {report['retrained_runs']} runs ({report['stacks']} stacks): {report['identical']} identical, "
          f"{report['within_tolerance']} within tolerance, {report['differs']} differ; step 0 "
          f"{'within' if report['step0_ok'] else 'NOT within'} {STEP0_RTOL:g}")
    return EXIT_OK if report["step0_ok"] else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

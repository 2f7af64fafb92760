"""Turn the summary tables into what the paper uses: ``python -m gradatlas.analysis ledger|sensitivity|figures``.

load (``records``) -> compute (``claims``, ``theory``) -> write. ``ledger``: the claims
ledger, the theory table, one LaTeX table per study, the grid table of the appendix and
``numbers.tex`` (every number the text quotes). ``sensitivity``: the stable range of every
named threshold (``claims.sensitivity``), beside the ledger. ``figures``: one figure per
``figures.FIGURES`` entry (``gradatlas.analysis.figures.registry``), after the sensitivity.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import pandas as pd

from gradatlas.analysis import claims, figures, tables, theory
from gradatlas.analysis.claims import seeds, sensitivity
from gradatlas.analysis.figures import output
from gradatlas.core import layout
from gradatlas.core.exit_status import EXIT_BAD_INPUT
from gradatlas.core.files import RecordError, read_table, write_table, write_text
from gradatlas.core.forked import forked_map

VERDICT_COUNTS = {"supported": "GANumSupported", "contradicted": "GANumContradicted", "mixed": "GANumMixed",
                  "inconclusive": "GANumInconclusive", "no data at this scale": "GANumNoData",
                  "inconclusive (unstable)": "GANumUnstable"}


def grid_overview(runs: pd.DataFrame, studies: list[str]) -> pd.DataFrame:
    """Per study: cells, seeds, runs and their statuses (zeros for studies not run), and, where
    the summary has the ``underflow_probes`` column, the runs with a float32 underflow."""
    rows = []
    for study in studies:
        part = runs[runs["study"] == study]
        counts = part["status"].value_counts()
        row = {"study": study, "cells": part["cell"].nunique(), "seeds": _seeds_per_cell(part),
               "runs": len(part), "ok": int(counts.get("ok", 0)),
               "diverged": int(counts.get("diverged", 0)), "failed": int(counts.get("failed", 0))}
        if "underflow_probes" in runs:  # absent from summaries written before the probe existed
            row["underflow"] = int((part["underflow_probes"].fillna(0).astype(float) > 0).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _seeds_per_cell(part: pd.DataFrame) -> int | str:
    """Seeds per cell: one number, or ``min--max`` (an en dash in LaTeX) where some cells have
    more seeds than others (a study's ``cell_seeds``)."""
    if part.empty:
        return 0
    counts = part.groupby("cell")["seed"].nunique()
    return int(counts.min()) if counts.min() == counts.max() else f"{counts.min()}--{counts.max()}"


def numbers(runs: pd.DataFrame, verdicts: pd.DataFrame, provenance: dict[str, str]) -> dict[str, Any]:
    """The macros of ``numbers.tex``: counts, provenance and the verdict tally."""
    counts = runs["status"].value_counts()
    values: dict[str, Any] = {
        "GANumRuns": len(runs),
        "GANumOk": int(counts.get("ok", 0)),
        "GANumDiverged": int(counts.get("diverged", 0)),
        "GANumFailed": int(counts.get("failed", 0)),
        "GANumStudies": runs["study"].nunique(),
    }
    tally = verdicts["verdict"].value_counts()
    for verdict, macro in VERDICT_COUNTS.items():
        values[macro] = int(tally.get(verdict, 0))
    # The tally in words, for prose: "3 supported, 1 mixed, 2 inconclusive (unstable)".
    values["GAVerdictTally"] = ", ".join(f"{int(tally.get(v, 0))} {v}" for v in VERDICT_COUNTS if tally.get(v, 0))
    values.update(provenance)
    values.update(setup_numbers(runs))
    values.update(protocol_numbers())
    return values


def _listing(values) -> str:
    """Distinct values, ascending, comma-separated (integers without a decimal point)."""
    distinct = sorted(set(values))
    return ", ".join(str(int(v)) if isinstance(v, float) and v.is_integer() else str(v) for v in distinct)


def setup_numbers(runs: pd.DataFrame) -> dict[str, Any]:
    """The training details the setup quotes, from the runs as they trained: widths, depths,
    epochs, batch sizes, optimizers, the learning rates' range, and the compute (each stack's
    wall time once: its runs trained as one network and share it)."""
    def column(name: str) -> pd.Series:
        return runs[name].dropna() if name in runs else pd.Series(dtype=float)

    if {"stack_id", "wall_time_s"} <= set(runs.columns):
        stacks = runs.groupby("stack_id")["wall_time_s"].max()
        core_hours, n_stacks = float(stacks.sum()) / 3600.0, int(len(stacks))
    else:
        core_hours, n_stacks = float(column("wall_time_s").sum()) / 3600.0, len(runs)
    lrs = column("lr")
    tuned = runs.loc[runs["tune_margin"].notna(), "study"].nunique() if "tune_margin" in runs else 0
    return {
        "GAWidths": _listing(column("width")), "GADepthMin": int(column("depth").min()) if len(column("depth")) else 0,
        "GADepthMax": int(column("depth").max()) if len(column("depth")) else 0,
        "GAEpochs": _listing(column("epochs")), "GABatchSizes": _listing(column("batch_size")),
        "GAOptimizers": ", ".join(sorted({str(o).upper() if o == "sgd" else str(o).capitalize()
                                          for o in column("optimizer")})),
        "GALrMin": float(lrs.min()) if len(lrs) else float("nan"),
        "GALrMax": float(lrs.max()) if len(lrs) else float("nan"),
        "GACoreHours": round(core_hours, 2), "GANumStacks": n_stacks, "GANumTunedStudies": int(tuned),
    }


def protocol_numbers() -> dict[str, Any]:
    """The constants the setup and the protocol quote, read from where they are defined: the
    data, the probe schedule and thresholds, and the verdict protocol's confidence, family-wise
    rate, stability draws and threshold, seeds that decide and the sensitivity grid."""
    from gradatlas.analysis import intervals
    from gradatlas.analysis.claims import decision, measures, multiplicity, parts
    from gradatlas.analysis.claims import sensitivity as sensitivity_module
    from gradatlas.run import data
    from gradatlas.run.config import DataConfig, ProbeConfig
    from gradatlas.run.probes import DEAD_SLOPE_ABSOLUTE, PROBE_SET_SIZE

    return {
        "GAMnistFeatures": data.MNIST1D_LENGTH, "GAMnistClasses": data.MNIST1D_CLASSES,
        "GATrainExamples": DataConfig.n_train, "GATestExamples": DataConfig.n_test,
        "GADigitsFeatures": data.DIGITS_FEATURES,
        "GAProbeEvery": ProbeConfig.every, "GAProbeLogUntil": ProbeConfig.log_until,
        "GASaturation": ProbeConfig.saturation, "GADeadSlope": DEAD_SLOPE_ABSOLUTE, "GAProbeSet": PROBE_SET_SIZE,
        "GAConfidence": f"{intervals.CONFIDENCE:.0%}", "GAFamilyRate": f"{multiplicity.FAMILY_ALPHA:.0%}",
        "GAStabilityDraws": decision.STABILITY_DRAWS, "GAStable": decision.STABLE, "GAMinSeeds": parts.MIN_SEEDS,
        "GASensitivityPoints": sensitivity_module.GRID_POINTS, "GAFailSkill": measures.FAIL_SKILL,
        "GATrainSkill": measures.TRAIN_SKILL, "GACapDecades": int(measures.CAP_DECADES),
    }


def provenance(runs: pd.DataFrame) -> dict[str, str]:
    """Scale-wide provenance from the summary: commits, devices, versions (several values are
    listed, comma-separated: a scale trained by two commits says so)."""
    def listed(column: str) -> str:
        values = sorted(set(runs[column].dropna().astype(str))) if column in runs else []
        return ", ".join(values) or "unknown"

    commits = sorted({str(c)[:12] for c in runs["git_commit"].dropna()}) if "git_commit" in runs else []
    return {
        "GACommit": ", ".join(commits) or "unknown",
        "GADevice": listed("device"),
        "GATorchVersion": listed("torch_version"),
        "GAPythonVersion": listed("python_version"),
    }


def write_ledger(paths: layout.ScalePaths, runs: pd.DataFrame, layers: pd.DataFrame,
                 timesteps: pd.DataFrame, studies: list[str], steps: Optional[pd.DataFrame] = None,
                 processes: int = 1) -> pd.DataFrame:
    """Claims, theory, the LaTeX tables and ``numbers.tex`` (numbers, and the figure captions,
    which say what the data holds); returns the verdicts. Its independent computations (the
    claims, the theory table: each about 18 s at full scale; the captions and the study tables:
    15 s and 6 s together) run over ``processes`` forked workers."""
    def claims_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
        results, replicas = claims.evaluate_all(runs, layers, timesteps, steps=steps)
        return claims.verdict_frame(results, replicas), claims.parts_frame(results, replicas)

    # One item per figure caption and per study table, so that the workers finish together.
    computations: dict[str, Callable[[], Any]] = {
        "claims": claims_frames, "theory": lambda: theory.theory_table(runs, layers, timesteps),
        **{f"caption {name}": functools.partial(spec.caption_for, runs, layers, timesteps)
           for name, spec in figures.FIGURES.items()},
        **{f"study {study}": functools.partial(tables.study_table, runs, study) for study in studies}}
    found = dict(zip(computations, forked_map(lambda name: computations[name](), computations, processes)))
    verdicts, parts = found["claims"]
    captions = {name: found[f"caption {name}"] for name in figures.FIGURES}
    write_table(verdicts, paths.analysis("claims"))
    write_table(found["theory"], paths.analysis("theory"))
    # The claims table (the paper's first pages), the replicas' and every part of every claim and
    # replica (its appendix).
    write_text(paths.table("claims"), tables.claims_table(verdicts))
    write_text(paths.table("claim-replicas"), tables.replica_table(verdicts))
    write_text(paths.table("claim-parts"), tables.claim_parts_table(parts))
    for study in studies:
        write_text(paths.table(f"study-{study}"), found[f"study {study}"])
    write_text(paths.table("grid"), tables.grid_table(grid_overview(runs, studies)))
    macros = numbers(runs, verdicts, provenance(runs))
    macros["GAScale"] = paths.scale
    write_text(paths.numbers, tables.numbers_macros(macros) + tables.claim_macros(verdicts)
               + tables.caption_macros(captions))
    return verdicts


def write_sensitivity(paths: layout.ScalePaths, runs: pd.DataFrame, layers: pd.DataFrame,
                      timesteps: pd.DataFrame, steps: Optional[pd.DataFrame] = None,
                      processes: int = 1) -> pd.DataFrame:
    """The stable range of every claim's every threshold (``claims.sensitivity``) over
    ``processes`` workers: the table ``analysis/sensitivity.parquet`` and its LaTeX table."""
    frame = sensitivity.ranges_frame(sensitivity.ledger_ranges(claims.CLAIMS.values(),
                                                               claims.Tables(runs, layers, timesteps, steps),
                                                               processes=processes))
    write_table(frame, paths.analysis("sensitivity"))
    write_text(paths.table("sensitivity"), tables.sensitivity_table(frame))
    return frame


def cell_factors(runs: pd.DataFrame, study: str, cell: str) -> dict[str, Any]:
    """The factor values of one cell (``study``, ``cell``: ``name-value/name-value``), typed as
    the runs table holds them."""
    row = runs[(runs["study"].astype(str) == study) & (runs["cell"].astype(str) == cell)].iloc[0]
    names = [part.split("-", 1)[0] for part in cell.split("/") if part]
    values = {name: (row[name].item() if hasattr(row[name], "item") else row[name]) for name in names if name in row}
    # The runs table widens integer factors to float where a study's column holds NaN for
    # another study: a depth of 30.0 is the grid's 30.
    return {name: int(v) if isinstance(v, float) and v.is_integer() else v for name, v in values.items()}


def write_seed_rule(pilot: layout.ScalePaths, runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame,
                    target: str, out: Path, steps: Optional[pd.DataFrame] = None) -> list[seeds.SeedNeed]:
    """The seed rule (``claims.seeds``) on the pilot's ledger, written to ``out`` (YAML) for
    ``target``'s studies: per cell the seeds it needs and the sub-claims that need them."""
    import yaml

    needs = seeds.seed_needs(claims.evaluate(runs, layers, timesteps, steps=steps))
    cells = seeds.cell_seeds(needs)
    commits = provenance(runs)["GACommit"]
    doc = {
        "pilot": {"scale": pilot.scale, "runs_commit": commits, "runs": len(runs)},
        "target_scale": target,
        "rule": (f"per decisive sub-claim over seeds: the pilot's mean and spread taken as the truth, "
                 f"{seeds.SIMULATED_STUDIES} simulated studies per candidate n in {list(seeds.CANDIDATE_SEEDS)}, judged "
                 f"by the sub-claim's rule at its Holm-adjusted confidence; the smallest n giving the verdict of "
                 f"the pilot's effect in at least {seeds.TARGET_STABILITY:.0%} of them; a cell gets the largest n "
                 f"of the sub-claims reading it (gradatlas.analysis.claims.seeds)"),
        "cells": [{"study": study, "cell": cell_factors(runs, study, cell), "seeds": n,
                   "why": [f"claim {w.claim}: {w.part}: pilot {w.pilot_seeds} seeds, effect {w.value:.4g} "
                           f"({w.target}), {w.seeds} seeds give stability {w.stability:.2f}" for w in why]}
                  for (study, cell), (n, why) in sorted(cells.items())],
        "unreachable": [{"claim": w.claim, "part": w.part, "target": w.target,
                         "stability_at_most_seeds": None if w.stability != w.stability else round(w.stability, 3)}
                        for w in needs if w.seeds is None],
    }
    header = (f"# Written by `python -m gradatlas.analysis seeds --root {pilot.root} --target {target}`: the seeds\n"
              f"# the {target} scale gives each listed cell (at least), fixed from the pilot before it runs.\n")
    write_text(out, header + yaml.safe_dump(doc, sort_keys=False, width=110))
    return needs


def write_figures(paths: layout.ScalePaths, runs: pd.DataFrame, layers: pd.DataFrame,
                  timesteps: pd.DataFrame, steps: pd.DataFrame, processes: int = 1) -> None:
    """Every figure of ``figures.FIGURES``, over ``processes`` forked workers. The theory table,
    the claims and the sensitivity are the ledger's and the sensitivity's (they run first)."""
    found, ledger, theory_found = paths.analysis("sensitivity"), paths.analysis("claims"), paths.analysis("theory")
    # Read where the ledger wrote it (recomputing it took 17 s at full scale); recomputed for a
    # caller that draws without a ledger.
    theory_frame = (read_table(theory_found) if Path(theory_found).exists()
                    else theory.theory_table(runs, layers, timesteps))
    data = {"runs": runs, "layers": layers, "timesteps": timesteps, "steps": steps,
            "theory": theory_frame, "theory_table": theory_frame,
            "sensitivity": read_table(found) if Path(found).exists() else None,
            "claims": read_table(ledger) if Path(ledger).exists() else None}

    def write(name: str) -> None:
        output.save_figure(output.draw(name, **data), paths.figure(name))

    forked_map(write, figures.FIGURES, processes)


def main(argv: list[str] | None = None) -> int:
    """Write the ledger (claims, theory, tables, numbers) or the figures of one scale.

    Two parts, so that the workflow runs them side by side on two cores.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("ledger", "sensitivity", "figures", "seeds"), help="what to write")
    parser.add_argument("--target", default="full", help="seeds: the scale the pilot plans for")
    parser.add_argument("--out", type=Path, help="seeds: where to write (default conf/pilot/<target>.yaml)")
    parser.add_argument("--root", required=True, help="<results>/<scale>: reads summary/, writes the rest")
    parser.add_argument("--processes", type=int, default=1,
                        help="ledger, sensitivity, figures: worker processes (the workflow gives them the rule's threads)")
    parser.add_argument("--studies", nargs="+", default=[], help="every study the paper shows (ledger)")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    # The theory's Gaussian averages call the runs' activations (torch) on small arrays: one
    # intra-op thread, as the training jobs use; on a busy machine two cost 30x (measured:
    # theory.depth_scales 2.6 s a call against 0.09 s).
    import torch

    torch.set_num_threads(1)
    root = Path(args.root)
    paths = layout.ScalePaths(root.parent, root.name)
    try:
        # The claims read the layers' measurement columns only (Tables.layers_of); the ledger's
        # captions and the figures read its factor columns too.
        runs, layers, timesteps = layout.read_summary(paths, theory.LAYER_KEYS if args.part == "sensitivity" else ())
        # The step tables: the figures need them; the claims read them where the summary has
        # them (a summary aggregated before claim 17 timed training has none).
        steps = layout.read_steps(paths) if args.part == "figures" or paths.summary("steps").is_file() else None
    except RecordError as err:
        print(f"gradatlas.analysis: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.part == "ledger":
        if not args.studies:
            parser.error("ledger needs --studies")
        verdicts = write_ledger(paths, runs, layers, timesteps, args.studies, steps, args.processes)
        print(f"analysis: {len(runs)} runs, verdicts {verdicts['verdict'].value_counts().to_dict()}")
    elif args.part == "seeds":
        out = args.out or layout.CONF_DIR / "pilot" / f"{args.target}.yaml"
        needs = write_seed_rule(paths, runs, layers, timesteps, args.target, out, steps)
        print(f"analysis: seed rule on {len(needs)} sub-claims, {sum(n.seeds is None for n in needs)} unreachable; "
              f"wrote {out}")
    elif args.part == "sensitivity":
        frame = write_sensitivity(paths, runs, layers, timesteps, steps, args.processes)
        print(f"analysis: {len(frame)} thresholds, {int((frame['open_low'] & frame['open_high']).sum())} "
              f"whose verdict holds over their whole search range")
    else:
        write_figures(paths, runs, layers, timesteps, steps, args.processes)
        print(f"analysis: {len(figures.FIGURES)} figures from {len(runs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Turn the summary tables into what the paper uses: ``python -m gradatlas.analysis ledger|figures``.

load (``records``) -> compute (``claims``, ``theory``) -> write. ``ledger``: the claims
ledger, the theory table, one LaTeX table per study, the grid table of the appendix and
``numbers.tex`` (every number the text quotes). ``figures``: one figure per
``figures.FIGURES`` entry (``gradatlas.analysis.figures.registry``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from gradatlas.analysis import claims, figures, tables, theory
from gradatlas.analysis.figures import output
from gradatlas.core import layout
from gradatlas.core.exit_status import EXIT_BAD_INPUT
from gradatlas.core.files import RecordError, write_table, write_text

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
    values.update(provenance)
    return values


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
                 timesteps: pd.DataFrame, studies: list[str]) -> pd.DataFrame:
    """Claims, theory, the LaTeX tables and ``numbers.tex`` (numbers, and the figure captions,
    which say what the data holds); returns the verdicts."""
    results, replicas = claims.evaluate_all(runs, layers, timesteps)
    verdicts = claims.verdict_frame(results, replicas)
    write_table(verdicts, paths.analysis("claims"))
    write_table(theory.theory_table(runs, layers, timesteps), paths.analysis("theory"))
    # The claims table, the replicas' and, after them, every part of every claim and replica (one
    # file: the paper's input).
    write_text(paths.table("claims"), tables.claims_table(verdicts) + "\n" + tables.replica_table(verdicts) + "\n"
                       + tables.claim_parts_table(claims.parts_frame(results, replicas)))
    for study in studies:
        write_text(paths.table(f"study-{study}"), tables.study_table(runs, study))
    write_text(paths.table("grid"), tables.grid_table(grid_overview(runs, studies)))
    macros = numbers(runs, verdicts, provenance(runs))
    macros["GAScale"] = paths.scale
    captions = figures.captions(runs, layers, timesteps)
    write_text(paths.numbers, tables.numbers_macros(macros) + tables.caption_macros(captions))
    return verdicts


def write_figures(paths: layout.ScalePaths, runs: pd.DataFrame, layers: pd.DataFrame,
                  timesteps: pd.DataFrame, steps: pd.DataFrame) -> None:
    """Every figure of ``figures.FIGURES``."""
    # Recomputed rather than read from the ledger's theory.parquet (under a second): the two
    # parts then depend on the summary alone and run side by side.
    theory_frame = theory.theory_table(runs, layers, timesteps)
    data = {"runs": runs, "layers": layers, "timesteps": timesteps, "steps": steps,
            "theory": theory_frame, "theory_table": theory_frame}
    for name in figures.FIGURES:
        output.save_figure(output.draw(name, **data), paths.figure(name))


def main(argv: list[str] | None = None) -> int:
    """Write the ledger (claims, theory, tables, numbers) or the figures of one scale.

    Two parts, so that the workflow runs them side by side on two cores.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("ledger", "figures"), help="what to write")
    parser.add_argument("--root", required=True, help="<results>/<scale>: reads summary/, writes the rest")
    parser.add_argument("--studies", nargs="+", default=[], help="every study the paper shows (ledger)")
    args = parser.parse_args(argv)
    root = Path(args.root)
    paths = layout.ScalePaths(root.parent, root.name)
    try:
        runs, layers, timesteps = layout.read_summary(paths)
        steps = layout.read_steps(paths) if args.part == "figures" else None
    except RecordError as err:
        print(f"gradatlas.analysis: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.part == "ledger":
        if not args.studies:
            parser.error("ledger needs --studies")
        verdicts = write_ledger(paths, runs, layers, timesteps, args.studies)
        print(f"analysis: {len(runs)} runs, verdicts {verdicts['verdict'].value_counts().to_dict()}")
    else:
        write_figures(paths, runs, layers, timesteps, steps)
        print(f"analysis: {len(figures.FIGURES)} figures from {len(runs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""An archived scale: its products in the repository, so the paper can be rebuilt without
retraining: ``python -m gradatlas.workflow.archive pack|check|restore|compare``.

``pack`` copies what a scale produced (``ARCHIVED``: the summary tables, the tuning choices,
the claims and theory tables, the LaTeX tables, ``numbers.tex``, every figure as PDF and PNG,
the paper) into ``results/<scale>/archive/`` with ``manifest.json``: the SHA-256 and size of
each file and the provenance (commit, package versions, CPU, thread settings, wall time, run
counts by status). The run records are not archived (hundreds of MB); ``gradatlas.workflow.verify``
retrains a sample of them and compares with the archive instead.

With an archive present, the workflow (``rules/archive.smk``) restores the summary tables from
it (``restore`` checks each file's hash first), rebuilds the ledger, tables, figures and paper
from them, and ``compare`` checks that the rebuilt tables equal the archived ones.

``repack`` is for a change of the analysis, not of the runs: it replaces the archive's derived
products (``DERIVED``) by those rebuilt from its own summary tables, keeping the summary, the
tuning choices, the runs' provenance and the verification as they are (their hashes checked),
and records the commit that re-packed. One command: ``snakemake --cores 2 --config scale=full
repack``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from gradatlas.core import layout
from gradatlas.core.exit_status import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from gradatlas.core.files import RecordError, sha256, write_text
from gradatlas.core.layout import MANIFEST
from gradatlas.core.provenance import cpu_model, git, package_versions

# What an archive holds, relative to <results>/<scale>: every product but the run records.
ARCHIVED = ("summary/*.parquet", "tuning/*.json", "analysis/*.parquet", "tables/*.tex", "numbers.tex",
            "figures/*.pdf", "figures/*.png", "paper.pdf")
# The summary tables the analysis reads: what a rebuild restores from the archive.
RESTORED = tuple(f"summary/{name}.parquet" for name in layout.SUMMARY_TABLES)
# Rebuilt files that must equal the archived ones: text byte for byte, tables value for value.
# Figures are compared and reported, not required (a newer matplotlib may draw other bytes);
# the paper embeds LaTeX's build date.
MUST_EQUAL = ("tables/*.tex", "numbers.tex", "analysis/*.parquet")
REPORTED = ("figures/*.pdf", "figures/*.png")
# What an analysis change may replace (``repack``); the rest (``KEPT``) is what training made.
DERIVED = ("analysis/*.parquet", "tables/*.tex", "numbers.tex", "figures/*.pdf", "figures/*.png", "paper.pdf")
KEPT = ("summary/*.parquet", "tuning/*.json")
MAX_BYTES = 40 * 2**20      # what the repository can carry for one scale
# Written by gradatlas.workflow.verify into the archive; replaced along with it by the next pack.
VERIFICATION = ("verify.json", "verify.md")
PACKAGES = ("torch", "numpy", "pandas", "pyarrow", "scipy", "matplotlib", "seaborn", "hydra-core",
            "omegaconf", "snakemake", "mnist1d", "scikit-learn")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY", "MKL_CBWR")


class ArchiveError(Exception):
    """A damaged, foreign or oversized archive, or a rebuild that differs from it."""


def products(root: Path, patterns: tuple[str, ...] = ARCHIVED) -> list[str]:
    """The files under ``root`` matching ``patterns``, as sorted relative paths."""
    return sorted({str(p.relative_to(root)) for pattern in patterns for p in root.glob(pattern) if p.is_file()})


def read_manifest(archive: Path) -> dict[str, Any]:
    """The archive's manifest; ArchiveError when absent or unreadable."""
    try:
        manifest = json.loads((archive / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        raise ArchiveError(f"{archive / MANIFEST}: no readable archive manifest ({err})") from err
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArchiveError(f"{archive / MANIFEST}: not an archive manifest")
    return manifest


def check(archive: Path) -> list[str]:
    """Problems with the archive: files missing, or whose hash or size differ from the manifest."""
    problems = []
    for name, entry in read_manifest(archive).get("files", {}).items():
        path = archive / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != entry["bytes"] or sha256(path) != entry["sha256"]:
            problems.append(f"{name}: differs from the manifest (sha256 {entry['sha256'][:12]})")
    return problems


def restore(archive: Path, name: str, out: Path) -> None:
    """Copy one archived file to ``out`` after checking it against the manifest."""
    entry = read_manifest(archive)["files"].get(name)
    if entry is None:
        raise ArchiveError(f"{archive}: {name} is not in the archive")
    if sha256(archive / name) != entry["sha256"]:
        raise ArchiveError(f"{archive / name}: differs from the manifest; the archive is damaged")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    shutil.copyfile(archive / name, tmp)
    os.replace(tmp, out)


def _wall_seconds(root: Path) -> dict[str, Any]:
    """From the start of the first training job (batch manifests) to the paper's last write."""
    starts = []
    for path in (root / "batches").glob("*/*.json"):
        try:
            started = json.loads(path.read_text()).get("started_at")
        except (OSError, ValueError):
            continue
        if started is not None:
            starts.append(float(started))
    paper = root / "paper.pdf"
    if not starts or not paper.exists():
        return {"wall_seconds": None, "wall_from": "unknown: no batch manifest with a start time"}
    return {"wall_seconds": round(paper.stat().st_mtime - min(starts), 1),
            "wall_from": "first training job's start to the paper (the workflow's parse before it not counted)"}


def provenance(root: Path, plan: str | None = None) -> dict[str, Any]:
    """Where and how the scale was made: code, packages, CPU, threads, wall time, run counts."""
    runs = layout.read_summary(layout.ScalePaths(root.parent, root.name))[0]
    versions = package_versions(PACKAGES)
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - provenance must not fail on an exotic build
        capability = "unknown"
    sweeps = sum(len(json.loads(p.read_text()).get("runs", [])) for p in (root / "batches").glob("*/sweep-*.json"))
    return {
        "commit_of_archive": git("rev-parse", "HEAD"),
        "uncommitted_changes": git("status", "--porcelain", "--untracked-files=no") not in ("", "unknown"),
        "commits_of_runs": sorted(set(runs["git_commit"].dropna().astype(str))) if "git_commit" in runs else [],
        "python": platform.python_version(),
        "packages": versions,
        "cpu_model": cpu_model(),
        "cpu_capability": capability,
        "cpu_count": os.cpu_count(),
        "threads_per_training_job": 1,
        "environment": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "runs": {"total": len(runs), **{k: int(v) for k, v in runs["status"].value_counts().items()}},
        "sweep_runs": sweeps,
        "plan_estimate": plan,
        **_wall_seconds(root),
    }


def pack(root: Path, archive: Path, plan: str | None = None, wall_seconds: float | None = None,
         wall_from: str = "measured around the whole workflow command") -> dict[str, Any]:
    """Archive the products of ``root`` into ``archive`` and return the manifest.

    ``wall_seconds``, where given, replaces the wall time read from the batch manifests, and
    ``wall_from`` says how it was measured (a scale grown by a second command, say).

    The new archive is assembled beside the old one and swapped in; an existing directory is
    replaced only if it is an archive holding nothing but its listed files and verification.
    """
    names = products(root)
    missing = [name for name in RESTORED if name not in names]
    if missing or "paper.pdf" not in names:
        raise ArchiveError(f"{root}: not a finished scale (missing {missing or ['paper.pdf']})")
    size = sum((root / name).stat().st_size for name in names)
    if size > MAX_BYTES:
        raise ArchiveError(f"{root}: products are {size / 2**20:.1f} MiB, more than the {MAX_BYTES / 2**20:.0f} MiB "
                           "an archive may hold")
    if archive.exists():
        _check_replaceable(archive)
    info = provenance(root, plan)
    if wall_seconds is not None:
        info.update(wall_seconds=wall_seconds, wall_from=wall_from)
    staging = archive.parent / f".{archive.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        for name in names:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / name, staging / name)
        manifest = {"scale": root.name, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "bytes": size, "provenance": info,
                    "files": {name: {"sha256": sha256(staging / name), "bytes": (staging / name).stat().st_size}
                              for name in names}}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        old = archive.parent / f".{archive.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        if archive.exists():
            os.replace(archive, old)
        os.replace(staging, archive)
        if old.exists():
            shutil.rmtree(old)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return manifest


def repack(root: Path, archive: Path) -> dict[str, Any]:
    """Replace the derived products of ``archive`` by those of ``root``, rebuilt from the
    archive's own summary (``rules/archive.smk``: ``repack``); returns the new manifest.

    Raises:
        ArchiveError: the archive is damaged, ``root``'s summary tables are not the archived
            ones (a rebuild from another scale), a derived product is missing, or the result
            would exceed ``MAX_BYTES``.
    """
    problems = check(archive)
    if problems:
        raise ArchiveError(f"{archive}: damaged ({problems[0]}); re-pack only a whole archive")
    _check_replaceable(archive)
    manifest = read_manifest(archive)
    listed = manifest["files"]
    for name in RESTORED:
        if not (root / name).exists() or sha256(root / name) != listed.get(name, {}).get("sha256"):
            raise ArchiveError(f"{root / name}: not the archived summary table; rebuild this scale from its "
                               "archive before re-packing")
    kept = [name for name in products(archive, KEPT) if name in listed]
    derived = products(root, DERIVED)
    if "paper.pdf" not in derived or "numbers.tex" not in derived:
        raise ArchiveError(f"{root}: not a finished rebuild (no paper.pdf or numbers.tex)")
    size = sum((archive / n).stat().st_size for n in kept) + sum((root / n).stat().st_size for n in derived)
    if size > MAX_BYTES:
        raise ArchiveError(f"re-packed archive would be {size / 2**20:.1f} MiB, more than {MAX_BYTES / 2**20:.0f} MiB")
    staging = archive.parent / f".{archive.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        sources = {**{name: archive / name for name in kept}, **{name: root / name for name in derived}}
        for name, source in sources.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staging / name)
        for name in VERIFICATION:
            if (archive / name).exists():
                shutil.copyfile(archive / name, staging / name)
        repacks = list(manifest.get("repacked", []))
        repacks.append({"commit": git("rev-parse", "HEAD"),
                        "uncommitted_changes": git("status", "--porcelain", "--untracked-files=no") not in ("", "unknown"),
                        "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                        "replaced": "derived products only: " + ", ".join(DERIVED)})
        new = {**manifest, "bytes": size, "repacked": repacks,
               "files": {name: {"sha256": sha256(staging / name), "bytes": (staging / name).stat().st_size}
                         for name in sources}}
        (staging / MANIFEST).write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")
        old = archive.parent / f".{archive.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.replace(archive, old)
        os.replace(staging, archive)
        shutil.rmtree(old)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return new


def _check_replaceable(archive: Path) -> None:
    if archive.is_dir() and not any(archive.iterdir()):
        return  # an empty directory (made by hand, or by a workflow) holds nothing to lose
    listed = set(read_manifest(archive)["files"]) | {MANIFEST, *VERIFICATION}
    foreign = sorted(str(p.relative_to(archive)) for p in archive.rglob("*")
                     if p.is_file() and str(p.relative_to(archive)) not in listed)
    if foreign:
        raise ArchiveError(f"{archive}: holds files the archive did not make ({foreign[:5]}); "
                           "move them away first")


def compare(archive: Path, root: Path) -> dict[str, Any]:
    """Rebuilt products of ``root`` against the archive: which are equal, which differ."""
    listed = read_manifest(archive)["files"]
    report: dict[str, Any] = {"archive": str(archive), "root": str(root), "equal": [], "differ": [],
                              "missing": [], "figures_equal": [], "figures_differ": []}
    for name in products(archive, MUST_EQUAL):
        if name not in listed:
            continue
        rebuilt = root / name
        if not rebuilt.exists():
            report["missing"].append(name)
        elif _same(archive / name, rebuilt):
            report["equal"].append(name)
        else:
            report["differ"].append(name)
    for name in products(archive, REPORTED):
        rebuilt = root / name
        same = rebuilt.exists() and sha256(rebuilt) == listed.get(name, {}).get("sha256")
        report["figures_equal" if same else "figures_differ"].append(name)
    report["ok"] = not report["differ"] and not report["missing"]
    return report


def _same(archived: Path, rebuilt: Path) -> bool:
    if archived.suffix == ".parquet":  # values, not bytes: parquet embeds the writer's version
        try:
            pd.testing.assert_frame_equal(pd.read_parquet(archived), pd.read_parquet(rebuilt))
        except AssertionError:
            return False
        return True
    return archived.read_bytes() == rebuilt.read_bytes()


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="archive a finished scale")
    p.add_argument("--root", type=Path, required=True, help="<results>/<scale>")
    p.add_argument("--archive", type=Path, required=True)
    p.add_argument("--plan", help="the plan's total line, stored as the estimate")
    p.add_argument("--wall-seconds", type=float, help="the workflow's measured wall time, if known")
    p.add_argument("--wall-from", default="measured around the whole workflow command",
                   help="how --wall-seconds was measured")
    p.add_argument("--receipt", type=Path, help="also write a copy of the new manifest here")
    p = sub.add_parser("repack", help="replace an archive's derived products by those rebuilt from its summary")
    p.add_argument("--root", type=Path, required=True, help="<results>/<scale>, rebuilt from the archive")
    p.add_argument("--archive", type=Path, required=True)
    p.add_argument("--receipt", type=Path, help="also write a copy of the new manifest here")
    p = sub.add_parser("check", help="check every archived file against the manifest")
    p.add_argument("--archive", type=Path, required=True)
    p = sub.add_parser("restore", help="copy archived files out, hashes checked")
    p.add_argument("--archive", type=Path, required=True)
    p.add_argument("--file", dest="files", action="append", required=True, help="archived path (repeatable)")
    p.add_argument("--out", dest="outs", type=Path, action="append", required=True, help="destination (repeatable)")
    p = sub.add_parser("compare", help="rebuilt products against the archive")
    p.add_argument("--archive", type=Path, required=True)
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="report (JSON)")
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            manifest = pack(args.root, args.archive, args.plan, args.wall_seconds, args.wall_from)
            if args.receipt:
                write_text(args.receipt, (args.archive / MANIFEST).read_text())
            print(f"archived {len(manifest['files'])} files, {manifest['bytes'] / 2**20:.1f} MiB, in {args.archive}")
        elif args.command == "repack":
            manifest = repack(args.root, args.archive)
            if args.receipt:
                write_text(args.receipt, (args.archive / MANIFEST).read_text())
            print(f"re-packed {args.archive}: {len(manifest['files'])} files, {manifest['bytes'] / 2**20:.1f} MiB")
        elif args.command == "check":
            problems = check(args.archive)
            for problem in problems:
                print(f"gradatlas.workflow.archive: {problem}", file=sys.stderr)
            print(f"{args.archive}: {'damaged' if problems else 'every file matches the manifest'}")
            return EXIT_FAILED if problems else EXIT_OK
        elif args.command == "restore":
            if len(args.files) != len(args.outs):
                parser.error("give one --out per --file")
            for name, out in zip(args.files, args.outs):
                restore(args.archive, name, out)
        else:
            report = compare(args.archive, args.root)
            write_text(args.out, json.dumps(report, indent=1) + "\n")
            print(f"rebuilt against the archive: {len(report['equal'])} equal, {len(report['differ'])} differ "
                  f"{report['differ']}, {len(report['missing'])} missing; figures: {len(report['figures_equal'])} "
                  f"equal, {len(report['figures_differ'])} differ")
            return EXIT_OK if report["ok"] else EXIT_FAILED
    except (ArchiveError, RecordError) as err:  # the archive or the scale given is not usable
        print(f"gradatlas.workflow.archive: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as err:  # writing failed (a full disk, say)
        print(f"gradatlas.workflow.archive: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

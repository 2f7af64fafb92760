"""``python -m gradatlas.analysis.figures captions [--check] [--dir DIR]``: the report's caption files.

Writes ``report/figures/<name>.rst`` for every registered figure from its spec and removes the
caption files of figures no longer registered; ``--check`` writes nothing and exits 1 when the
files differ from what the registry gives (a test runs it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gradatlas.analysis.figures.registry import report_captions

REPORT_DIR = Path(__file__).resolve().parents[4] / "report" / "figures"


def stale_captions(directory: Path) -> list[str]:
    """The caption files of ``directory`` that differ from the registry's, are missing or are extra."""
    wanted = report_captions()
    present = {p.name: p.read_text() for p in sorted(directory.glob("*.rst"))}
    return sorted({name for name in wanted if present.get(name) != wanted[name]} | (set(present) - set(wanted)))


def write_captions(directory: Path) -> list[str]:
    """Make ``directory``'s caption files the registry's; returns the names it wrote or removed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = stale_captions(directory)
    wanted = report_captions()
    for name in changed:
        path = directory / name
        if name in wanted:
            path.write_text(wanted[name])
        else:
            path.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the report's caption files."""
    parser = argparse.ArgumentParser(prog="python -m gradatlas.analysis.figures", description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=("captions",), help="what to write")
    parser.add_argument("--dir", type=Path, default=REPORT_DIR, help="the caption directory (report/figures)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files are stale; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_captions(args.dir)
        if stale:
            print(f"{args.dir}: stale caption files {', '.join(stale)}; run python -m gradatlas.analysis.figures "
                  "captions", file=sys.stderr)
            return 1
        return 0
    for name in write_captions(args.dir):
        print(f"{args.dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

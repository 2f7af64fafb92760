"""Compare the claims ledgers of two builds of one scale (say, the same scale trained on two
CPUs, or with ``ATEN_CPU_CAPABILITY`` / ``MKL_CBWR`` set): which verdicts differ.

    python bench/ledger_diff.py results/quick results-other-cpu/quick

Prints one line per claim (verdict, deciding value with interval, stability, in each build)
and last ``differ: <n> of <claims> verdicts (<m> of them stable in both)``, where stable
means stability >= 0.9 (``gradatlas.analysis.claims``). Exit status 0 (a report, not a test).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

STABLE = 0.9


def load(root: Path) -> pd.DataFrame:
    """The claims table of a build, indexed by claim."""
    return pd.read_parquet(root / "analysis" / "claims.parquet").set_index("claim")


def describe(row: pd.Series) -> str:
    """Verdict, value [interval] and stability of one claim in one build."""
    value = "-" if pd.isna(row["value"]) else f"{row['value']:.4g}"
    interval = "" if pd.isna(row["ci_low"]) else f" [{row['ci_low']:.4g}, {row['ci_high']:.4g}]"
    return f"{row['verdict']} {value}{interval} n={row['n']} stab={row['stability']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="<results>/<scale> of the first build")
    parser.add_argument("b", type=Path, help="<results>/<scale> of the second build")
    args = parser.parse_args()
    a, b = load(args.a), load(args.b)
    differ = stable_differ = 0
    for claim in sorted(set(a.index) | set(b.index)):
        ra, rb = a.loc[claim], b.loc[claim]
        same = ra["verdict"] == rb["verdict"]
        stable = ra["stability"] >= STABLE and rb["stability"] >= STABLE
        differ += not same
        stable_differ += (not same) and stable
        print(f"claim {claim:>2} {'same  ' if same else 'DIFFER'} A: {describe(ra)} | B: {describe(rb)}")
    print(f"differ: {differ} of {len(set(a.index) | set(b.index))} verdicts ({stable_differ} of them stable in both)")


if __name__ == "__main__":
    main()

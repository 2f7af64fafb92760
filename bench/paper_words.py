"""The paper's length as a reader meets it: pages, and the body's words without tables and captions.

The paper of a built scale is typeset once more in a scratch directory with every figure and
table environment (``figure``, ``figure*``, ``table``, ``table*``, ``longtable``) emptied, so
that their captions and cells are gone and only the running text is left; ``pdftotext`` reads
that PDF and the words of the body (from the abstract to the last section before the
references; the appendix holds only tables) are counted as whitespace-separated tokens that
contain a letter or a digit.

    python bench/paper_words.py results/full     # after `snakemake --cores 2 --config scale=full`

Prints the page count of ``<root>/paper.pdf`` and the body's words (per section they cannot
be told apart: pdftotext interleaves the two columns); nothing in the repository or the
results is written.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EMPTIED = ("figure", "figure*", "table", "table*", "longtable")
# The wrapper: environ's \RenewEnviron drops an environment's body unread.
WRAPPER = (r"\RequirePackage{environ}" "\n"
           r"\AtBeginDocument{" + "".join(rf"\RenewEnviron{{{name}}}{{}}" for name in EMPTIED) + "}\n"
           r"\input{main.tex}" "\n")
WORD = re.compile(r"[A-Za-z0-9]")


def pages(pdf: Path) -> int:
    """The page count pdfinfo reports."""
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))


def words_only_text(root: Path) -> str:
    """pdftotext of the paper typeset without its figures and tables."""
    with tempfile.TemporaryDirectory(prefix="paper-words-") as tmp:
        work = Path(tmp)
        shutil.copytree(REPO / "paper", work, dirs_exist_ok=True)
        (work / "words.tex").write_text(WRAPPER)
        env = {**os.environ, "TEXINPUTS": f"{root.resolve()}:{work}//:", "BIBINPUTS": f"{work}:"}
        subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "words.tex"], cwd=work,
                       env=env, check=True, capture_output=True)
        return subprocess.run(["pdftotext", str(work / "words.pdf"), "-"], capture_output=True, text=True,
                              check=True).stdout


def body(text: str) -> str:
    """The text from the abstract up to the references."""
    start = text.find("Abstract")
    found = re.search(r"^\s*References\s*$", text, re.MULTILINE)
    end = found.start() if found else -1
    if start < 0 or end < 0:
        raise SystemExit("paper_words: no 'Abstract' or 'References' heading in the text")
    return text[start:end]


def count(text: str) -> int:
    """Whitespace-separated tokens with a letter or a digit (page numbers included: a handful)."""
    return sum(1 for token in text.split() if WORD.search(token))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="results/<scale> with paper.pdf, numbers.tex, tables/, figures/")
    args = parser.parse_args(argv)
    pdf = args.root / "paper.pdf"
    if not pdf.is_file():
        print(f"paper_words: {pdf} not found: build the scale first", file=sys.stderr)
        return 2
    text = body(words_only_text(args.root))
    print(f"{pdf}: {pages(pdf)} pages; body without tables and captions: {count(text)} words")
    return 0


if __name__ == "__main__":
    sys.exit(main())

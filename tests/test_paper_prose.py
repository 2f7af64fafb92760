"""The paper's hand-written prose interprets; numbers, counts and verdict words come from the
generated macros (numbers.tex, the per-claim macros). This lint fails on a digit or a verdict
word in a section's prose outside math, macros and their arguments, citations, references,
code names (texttt) and a short allowlist of names; and on a section that refers to a claim
without printing that claim's verdict sentence from the ledger."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gradatlas.analysis.claims import CLAIMS
from gradatlas.analysis.tables import macro_name

pytestmark = pytest.mark.unit

PAPER = Path(__file__).resolve().parents[1] / "paper"
SECTIONS = sorted((PAPER / "sections").glob("*.tex"))
# Names that carry a digit and are not numbers of this paper.
ALLOWED = ("MNIST-1D", "float32", "float64", "1D", "L2", "R^2", "arXiv",
           "unstable fixed point")  # a dynamical-systems term, not a verdict
VERDICT_WORDS = ("supported", "contradicted", "mixed", "inconclusive", "unstable", "supports", "contradicts")
# Arguments that are names, never prose: their braces are dropped with the command.
NAME_COMMANDS = ("cite", "citep", "citet", "ref", "label", "input", "includegraphics", "texttt", "claimref",
                 "claimsref", "verdictword", "url", "begin", "end", "eqref", "autoref", "hyperref", "GAClaimVerdicts")
MATH = re.compile(r"\$\$.*?\$\$|\$.*?\$|\\\(.*?\\\)|\\\[.*?\\\]|\\begin\{(equation|align|gather)\*?\}.*?"
                  r"\\end\{\1\*?\}", re.S)


def prose(tex: str) -> str:
    """The hand-written prose of a LaTeX source: comments, math, name arguments, macros and
    float bodies' options removed."""
    text = re.sub(r"(?<!\\)%.*", "", tex)
    text = MATH.sub(" ", text)
    names = "|".join(NAME_COMMANDS)
    text = re.sub(rf"\\({names})\*?(\[[^\]]*\])*(\{{[^{{}}]*\}})+", " ", text)
    text = re.sub(r"\\[A-Za-z@]+\*?(\[[^\]]*\])?", " ", text)  # the other macros; their text arguments stay
    text = re.sub(r"\\.", " ", text)  # escaped characters (\%, \&, \_)
    for name in ALLOWED:
        text = text.replace(name, " ")
    return text


def violations(tex: str) -> list[str]:
    """The digits and verdict words in ``tex``'s prose, each with a little context."""
    text = prose(tex)
    found = [text[max(m.start() - 30, 0):m.end() + 30].replace("\n", " ") for m in re.finditer(r"\d+", text)]
    words = re.compile(r"\b(" + "|".join(VERDICT_WORDS) + r")\b", re.I)
    found += [text[max(m.start() - 30, 0):m.end() + 30].replace("\n", " ") for m in words.finditer(text)]
    return found


def claims_referred(tex: str) -> set[int]:
    """The claims a section refers to (``\\claimref{N}``, ``\\claimsref{N, M}``)."""
    ids: set[int] = set()
    for group in re.findall(r"\\claims?ref\{([^}]*)\}", tex):
        ids |= {int(x) for x in re.findall(r"\d+", group)}
    return ids


def sentence_macro(claim: int, field: str = "sentence") -> str:
    return "\\" + macro_name(f"claim{claim}_{field}", "GA")


@pytest.mark.parametrize("section", SECTIONS, ids=lambda p: p.stem)
def test_no_number_or_verdict_word_in_hand_written_prose(section):
    assert violations(section.read_text()) == []


@pytest.mark.parametrize("section", SECTIONS, ids=lambda p: p.stem)
def test_a_section_prints_the_verdict_of_every_claim_it_refers_to(section):
    tex = section.read_text()
    # The verdict sentence; the abstract may print the verdict word alone.
    fields = ("sentence", "verdict") if section.stem == "abstract" else ("sentence",)
    missing = sorted(c for c in claims_referred(tex) if not any(sentence_macro(c, f) in tex for f in fields))
    assert missing == [], f"{section.name} refers to claims {missing} without printing their verdicts"


def test_every_claim_is_printed_by_some_section():
    tex = "\n".join(p.read_text() for p in SECTIONS)
    assert [c for c in CLAIMS if sentence_macro(c) not in tex] == []


def test_the_lint_catches_numbers_and_verdict_words_and_leaves_macros_alone():
    assert violations("The factor is 0.14 here.") and violations("This claim is supported.")
    assert violations(r"\textbf{contradicted}")  # a text argument is prose
    assert not violations(r"The factor is \GAClaimOneValue{} ($\sigma' \le 1/4$; \citep{he2015delving}).")
    assert not violations(r"Figure~\ref{fig:x} and \claimref{22} on MNIST-1D in float32 (\texttt{mnist1d}). % 3 seeds")

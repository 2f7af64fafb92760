"""LaTeX tables and macros for the paper (booktabs rules, siunitx ``\\num{}`` for numbers).

Pure functions from DataFrames (or dicts) to LaTeX source; writing the files is the caller's
job. Conventions shared by every table:

- text is escaped (``escape_latex``): ``_ % & $ # { } ~ ^ \\ | < >`` are safe in any cell;
- numbers go through ``format_number``: integers bare (``2``, never ``2.00``: siunitx's
  round-mode=figures would pad an integer in ``\\num{}`` to three figures), other numbers
  rounded to 3 significant figures inside ``\\num{}``; NaN or a missing value is ``--``,
  infinities are ``$\\infty$``;
- a value with a 95% interval reads ``\\num{m} [\\num{lo}, \\num{hi}]``, with the range of
  2-3 seeds ``\\num{m} (\\num{lo}--\\num{hi})`` (``value_with_ci``), the interval dropped where
  it is undefined (one seed).

The generated source needs ``booktabs`` and ``siunitx`` (as ``paper/main.tex`` loads them).
Labels: ``tab:claims``, ``tab:claims-replicas``, ``tab:claim-parts``, ``tab:study-<study>``, ``tab:grid``.
"""

from __future__ import annotations

import math
import re
from numbers import Integral, Real
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from gradatlas.analysis import intervals
from gradatlas.analysis.claims import MIN_SEEDS, NO_DATA, REPLICA_DATA, STABILITY_DRAWS, STABLE, failed_to_train
from gradatlas.core.names import FACTORS

_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    # Without T1 font encoding these print as other glyphs (an em dash, inverted marks).
    "|": r"\textbar{}", "<": r"\textless{}", ">": r"\textgreater{}",
}
_SPECIALS_RE = re.compile("|".join(re.escape(c) for c in _SPECIALS))
MISSING = "--"


# The symbols the sub-claims' names and notes write in ASCII, typeset as the text's math writes
# them (else "sigma_w^2" prints with a caret): (pattern, LaTeX with {} for the pattern's group),
# each a whole token; nothing else is touched.
_SYMBOLS = (
    (r"sigma_([wbu])\^2", "$\\sigma_{}^2$"),
    (r"chi_1\^\(\(L-1\)/2\)", "$\\chi_1^{{(L-1)/2}}$"),
    (r"chi_1", "$\\chi_1$"),
    (r"xi_c", "$\\xi_c$"),
    (r"dL/dh_t", "$\\partial L/\\partial h_t$"),
    (r"1/n_l", "$1/n_l$"),
    (r"Var/E\^2", "Var/E$^2$"),
    (r"L\^(-?[0-9.]*[0-9])", "$L^{{{}}}$"),
    (r"R\^2", "$R^2$"),
)
_SYMBOLS_RE = re.compile("|".join(f"(?<![A-Za-z])(?:{pattern})(?![A-Za-z0-9_])" for pattern, _ in _SYMBOLS))


def _specials(text: str) -> str:
    return _SPECIALS_RE.sub(lambda m: _SPECIALS[m.group()], text)


def _symbol(token: str) -> str:
    for pattern, latex in _SYMBOLS:
        match = re.fullmatch(pattern, token)
        if match:
            return latex.format(*match.groups())
    raise AssertionError(token)  # unreachable: _SYMBOLS_RE matches only these


def escape_latex(text: Any) -> str:
    """``text`` as LaTeX source that prints it verbatim (specials escaped), the ASCII symbols of
    ``_SYMBOLS`` typeset as math."""
    text, out, at = str(text), [], 0
    for match in _SYMBOLS_RE.finditer(text):
        out += [_specials(text[at:match.start()]), _symbol(match.group())]
        at = match.end()
    return "".join(out) + _specials(text[at:])


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, Real) and math.isnan(value))
    except TypeError:
        return False


def format_number(value: Any, digits: int = 3) -> str:
    """A number as ``\\num{...}`` rounded to ``digits`` significant figures.

    Integers (and integer-valued floats) are printed bare and exact, outside ``\\num{}``;
    NaN/None give ``--``; +-inf give ``$\\infty$`` / ``$-\\infty$``. Non-numbers are escaped text.
    """
    if _is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return _integer(int(value))
    if isinstance(value, Real):
        x = float(value)
        if math.isinf(x):
            return r"$\infty$" if x > 0 else r"$-\infty$"
        if x == int(x) and abs(x) < 1e15:
            return _integer(int(x))
        return rf"\num{{{x:.{digits}g}}}"
    return escape_latex(value)


def _integer(n: int) -> str:
    # Bare digits: siunitx round-mode=figures prints \num{2} as 2.00. A minus sign in math mode.
    return f"${n}$" if n < 0 else str(n)


def value_with_ci(value: Any, low: Any = None, high: Any = None, digits: int = 3, method: str = "") -> str:
    """``value [low, high]`` (a 95% interval) or ``value (low--high)`` (``method`` "range": the
    range of 2-3 seeds); the interval left out where undefined."""
    if _is_missing(value):
        return MISSING
    text = format_number(value, digits)
    if _is_missing(low) or _is_missing(high) or method == intervals.EXACT:
        return text
    if method == intervals.RANGE:
        return f"{text} ({format_number(low, digits)}--{format_number(high, digits)})"
    return f"{text} [{format_number(low, digits)}, {format_number(high, digits)}]"


def _tabular(columns: str, header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = [rf"\begin{{tabular}}{{{columns}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join(row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return lines


def _float(body: list[str], caption: str, label: Optional[str], wide: bool, size: str = r"\small") -> str:
    env = "table*" if wide else "table"
    # A float page too ("p"): a table taller than the top area would otherwise wait for the end.
    lines = [rf"\begin{{{env}}}[{'tp' if wide else 'tbp'}]", r"\centering", size, rf"\caption{{{caption}}}"]
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += body + [rf"\end{{{env}}}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------------

def _long_table(columns: str, header: Sequence[str], rows: list, caption: str, label: Optional[str],
                size: str = r"\footnotesize") -> str:
    """``rows`` as one ``longtable``: it breaks across pages without losing a row, its header
    repeated on every page (the appendix is set in one column, where longtable works)."""
    head = " & ".join(header) + r" \\"
    n = len(header)
    lines = ["{" + size, r"\setlength{\tabcolsep}{2.5pt}", rf"\begin{{longtable}}{{{columns}}}",
             rf"\caption{{{caption}}}" + (rf"\label{{{label}}}" if label else "") + r" \\",
             r"\toprule", head, r"\midrule", r"\endfirsthead",
             rf"\multicolumn{{{n}}}{{@{{}}l}}{{\emph{{(continued)}}}} \\", r"\toprule", head, r"\midrule", r"\endhead",
             r"\midrule", rf"\multicolumn{{{n}}}{{r@{{}}}}{{\emph{{continued on the next page}}}} \\", r"\endfoot",
             r"\bottomrule", r"\endlastfoot"]
    lines += [" & ".join(row) + r" \\" for row in rows]
    lines += [r"\end{longtable}", "}", ""]
    return "\n".join(lines)


_CONFIDENCE_TEX = f"{intervals.CONFIDENCE:.0%}".replace("%", r"\%")
CLAIMS_CAPTION = (
    "The claims at a glance. Sub-claims: how many decisive ones are supported (S), contradicted (C), "
    "inconclusive (I) or without data (N), and how many are only reported. Deciding: the sub-claim that "
    "decided (the first contradicted or not supported one; for a supported claim the least stable one) with "
    "its value and Holm-adjusted interval, and for a mixed claim a supported one beside it; ( -- ) the range "
    f"of 2--{MIN_SEEDS - 1} seeds, never decisive. Stability: the share of {STABILITY_DRAWS} draws of new seeds "
    f"that give the same summary verdict (below {STABLE}: inconclusive, unstable, the would-be verdict in "
    "parentheses). Digits: the replica's verdict on scikit-learn's digits (M mixed, U unstable; "
    "Table~\\ref{tab:claims-replicas}). Protocol: Section~\\ref{sec:protocol}; every sub-claim: "
    "Table~\\ref{tab:claim-parts}; -- : not measured at this scale."
)


def _sub_claims_cell(row: Any) -> str:
    """'3 S, 1 C, 2 I (+ 2 reported)' from the ledger's sub-claim counts."""
    counts = [(row.sub_supported, "S"), (row.sub_contradicted, "C"), (row.sub_inconclusive, "I"),
              (row.sub_no_data, "N")]
    text = ", ".join(f"{int(k)} {letter}" for k, letter in counts if not _is_missing(k) and k) or MISSING
    return text + (f" (+ {int(row.reported)} reported)" if not _is_missing(row.reported) and row.reported else "")


def _verdict_cell(verdict: str, would_be: Any) -> str:
    text = escape_latex(verdict)
    if verdict == "inconclusive (unstable)" and not _is_missing(would_be):
        text += f" ({escape_latex(would_be)})"
    return text


def _deciding_cell(row: Any) -> str:
    text = escape_latex(row.deciding) if row.deciding else MISSING
    if row.deciding:
        text += ": " + value_with_ci(row.value, row.adj_low, row.adj_high, method=row.interval)
    if isinstance(row.counter, str) and row.counter:
        text += (r" \newline \emph{supported:} " + escape_latex(row.counter) + ": "
                 + value_with_ci(row.counter_value, row.counter_adj_low, row.counter_adj_high))
    return text


def claims_table(verdicts: pd.DataFrame, caption: str = CLAIMS_CAPTION, label: str = "tab:claims") -> str:
    """A ``table*`` listing every claim: id, title, its sub-claims' verdicts, the deciding
    sub-claim (and for ``mixed`` the supported one beside it) with its value and adjusted
    interval, n, the summary verdict and its stability.

    Args:
        verdicts: ``gradatlas.analysis.claims.verdict_frame``.
        caption: the caption (LaTeX source, not escaped).
        label: the ``\\label``.
    """
    rows = []
    for row in verdicts.itertuples(index=False):
        n = getattr(row, "n", None)
        # \raggedright: justified text in narrow columns spreads words apart; it is safe in
        # every column but the last, whose \\ it would redefine (stability is an r column).
        rows.append([
            str(int(row.claim)) if not _is_missing(row.claim) else MISSING,
            r"\raggedright " + escape_latex(row.title),
            r"\raggedright " + _sub_claims_cell(row),
            r"\raggedright " + _deciding_cell(row),
            MISSING if _is_missing(n) or n == 0 else str(int(n)),
            r"\raggedright " + _verdict_cell(row.verdict, row.would_be),
            MISSING if _is_missing(row.stability) else f"{float(row.stability):.2f}",
            *(_replica_cell(row, data) for data in REPLICA_DATA),
        ])
    columns = r"@{}r p{2.4cm} p{1.6cm} p{7.4cm} r p{1.7cm} r" + " l" * len(REPLICA_DATA) + "@{}"
    body = [r"\setlength{\tabcolsep}{3pt}"]
    body += _tabular(columns, ["\\#", "Claim", "Sub-claims", "Deciding sub-claim: value [adjusted interval]", "$n$",
                               "Verdict", "Stab.", *(escape_latex(data.capitalize()) for data in REPLICA_DATA)], rows)
    return _float(body, caption, label, wide=True, size=r"\scriptsize")


_VERDICT_LETTERS = {"supported": "S", "contradicted": "C", "mixed": "M", "inconclusive": "I",
                    "no data at this scale": "N", "inconclusive (unstable)": "U"}


def _replica_cell(row: Any, data: str) -> str:
    """'C 1.00': a replica's summary verdict letter and stability; -- without a replica."""
    verdict = getattr(row, f"verdict_{data}", "")
    if _is_missing(verdict) or not verdict:
        return MISSING
    stability = getattr(row, f"stability_{data}", math.nan)
    return _VERDICT_LETTERS.get(verdict, "?") + ("" if _is_missing(stability) else f" {float(stability):.2f}")


REPLICAS_CAPTION = (
    "Claims replicated on scikit-learn's digits (1,797 8\\texttimes{}8 images): the claim's own computation on "
    "the replica studies \\texttt{STUDY\\_digits}, smaller copies of its studies with \\texttt{data: digits}, "
    "their decisive sub-claims Holm-adjusted as a family of their own. Own: the summary verdict on the claim's own "
    "studies (Table~\\ref{tab:claims}); then the replica's deciding sub-claim with its value and adjusted "
    "interval, $n$, summary verdict and stability, as in Table~\\ref{tab:claims}."
)


def replica_table(verdicts: pd.DataFrame, data: str = "digits", caption: str = REPLICAS_CAPTION,
                  label: str = "tab:claims-replicas") -> str:
    """A ``table*`` of the claims replicated on ``data``: the own summary verdict beside the
    replica's deciding sub-claim, value [adjusted interval], n, verdict and stability
    (``verdict_frame``'s ``<field>_<data>`` columns); one row of -- when no claim has a replica."""
    rows = []
    for row in verdicts.itertuples(index=False):
        verdict = getattr(row, f"verdict_{data}", "")
        if _is_missing(verdict) or not verdict:
            continue
        field = lambda name: getattr(row, f"{name}_{data}")  # noqa: E731
        deciding = (escape_latex(field("deciding")) + ": "
                    + value_with_ci(field("value"), field("adj_low"), field("adj_high"), method=field("interval"))
                    if field("deciding") else MISSING)
        n = field("n")
        rows.append([
            str(int(row.claim)), r"\raggedright " + escape_latex(row.title),
            r"\raggedright " + _verdict_cell(row.verdict, row.would_be), r"\raggedright " + deciding,
            MISSING if _is_missing(n) or n == 0 else str(int(n)),
            r"\raggedright " + _verdict_cell(verdict, field("would_be")),
            MISSING if _is_missing(field("stability")) else f"{float(field('stability')):.2f}",
        ])
    if not rows:
        rows = [[MISSING] * 7]
    columns = r"@{}r p{2.6cm} p{1.8cm} p{7.0cm} r p{1.7cm} r@{}"
    body = [r"\setlength{\tabcolsep}{3pt}"]
    body += _tabular(columns, ["\\#", "Claim", "Own", "Deciding sub-claim on digits: value [adjusted interval]",
                               "$n$", "Verdict", "Stab."], rows)
    return _float(body, caption, label, wide=True, size=r"\footnotesize")


PARTS_CAPTION = (
    "Every sub-claim of every claim: value, its Holm-adjusted interval (at the confidence of its Holm step) "
    f"and its unadjusted {_CONFIDENCE_TEX} interval (( -- ): range of 2--{MIN_SEEDS - 1} seeds), $n$, the "
    "Holm-adjusted one-sided $p$ of its verdict, the verdict (after the adjustment; the unadjusted one in "
    "parentheses where it differs) and its stability under seed resampling. Role: \\emph{deciding} (a "
    "sub-claim Table~\\ref{tab:claims} shows), \\emph{decisive} (votes) or \\emph{reported} (does not vote, "
    "not in the family)."
)


def _p_cell(p: Any) -> str:
    if _is_missing(p):
        return MISSING
    return "$<10^{-6}$" if float(p) < 1e-6 else format_number(float(p), 2)


def claim_parts_table(parts: pd.DataFrame, caption: str = PARTS_CAPTION, label: str = "tab:claim-parts") -> str:
    """Every sub-claim of every claim (``claims.parts_frame``) as one long table."""
    rows = []
    for row in parts.itertuples(index=False):
        role = "deciding" if row.deciding else ("decisive" if row.decisive else "reported")
        # A reported part never votes: it has no verdict to print (an "inconclusive" beside an
        # R^2 of 1.00 would read as a judgement of it).
        verdict = escape_latex(row.verdict) if row.decisive else MISSING
        if row.decisive and isinstance(row.unadjusted, str) and row.unadjusted and row.unadjusted != row.verdict:
            verdict += f" ({escape_latex(row.unadjusted)})"
        replica = getattr(row, "replica", "")
        rows.append([
            str(int(row.claim)) + (f" ({escape_latex(replica)})" if isinstance(replica, str) and replica else ""),
            r"\raggedright " + escape_latex(row.part) + (rf" \newline {{\scriptsize {escape_latex(row.note)}}}"
                                                           if isinstance(row.note, str) and row.note else ""),
            r"\raggedright " + value_with_ci(row.value, row.adj_low, row.adj_high, method=row.interval),
            r"\raggedright " + value_with_ci(row.value, row.ci_low, row.ci_high, method=row.interval),
            MISSING if _is_missing(row.n) or row.n == 0 else str(int(row.n)),
            _p_cell(row.p_adjusted),
            r"\raggedright " + verdict, role,
            MISSING if _is_missing(row.stability) else f"{float(row.stability):.2f}",
        ])
    if not rows:
        rows = [[MISSING] * 9]
    header = ["\\#", "Sub-claim", "Adjusted", f"{_CONFIDENCE_TEX}", "$n$", "$p_{adj}$", "Verdict", "Role", "Stab."]
    columns = r"@{}r p{4.3cm} p{2.4cm} p{2.4cm} r r p{1.9cm} l r@{}"
    return _long_table(columns, header, rows, caption, label)


SENSITIVITY_CAPTION = (
    "Threshold sensitivity: for each named threshold of each claim, the largest range of values around it "
    "(on a grid over its stated search range, the other thresholds fixed) over which the claim's summary "
    "verdict, Holm-adjusted with the rest of the ledger fixed, stays what it is; ``open'' where the range "
    "reaches the end of the search range, else the verdict just beyond it. Claims without data at this scale "
    "are left out (no threshold can move their verdict). From the same runs, no retraining "
    "(\\texttt{gradatlas.analysis.claims.sensitivity})."
)


def _range_end(value: float, is_open: bool, beyond: str) -> str:
    """One end of a stable range: its value, "(open)" at the end of the search range, else the
    verdict just beyond it."""
    text = format_number(value)
    return f"{text} (open)" if is_open else f"{text} (then {escape_latex(beyond)})"


def sensitivity_table(frame: pd.DataFrame, caption: str = SENSITIVITY_CAPTION, label: str = "tab:sensitivity") -> str:
    """The stable range of every threshold (``claims.sensitivity.ranges_frame``) of every claim
    with data as one long table."""
    rows = []
    for row in frame.itertuples(index=False):
        if row.verdict == NO_DATA:
            continue
        rows.append([
            str(int(row.claim)), r"\texttt{" + escape_latex(row.threshold) + "}",
            r"\raggedright " + escape_latex(row.meaning),
            format_number(row.value),
            r"\raggedright " + f"{format_number(row.search_low)}--{format_number(row.search_high)}"
            + (" (log)" if row.log else ""),
            escape_latex(row.verdict),
            _range_end(row.stable_low, row.open_low, row.verdict_below) + " to "
            + _range_end(row.stable_high, row.open_high, row.verdict_above),
        ])
    if not rows:
        rows = [[MISSING] * 7]
    header = ["\\#", "Threshold", "Separates", "Value", "Searched", "Verdict", "Verdict unchanged from ... to"]
    # 17.4 cm with the column gaps: the text width of main.tex (7 in) is 17.8 cm.
    # The last column ragged too (a justified "1e-06 (open) to 0.01 (open)" spreads its words);
    # \arraybackslash keeps its \\ ending the row (array, loaded by siunitx).
    columns = r"@{}r p{3.5cm} p{3.7cm} r p{2.0cm} p{1.7cm} >{\raggedright\arraybackslash}p{3.8cm}@{}"
    return _long_table(columns, header, rows, caption, label)


# --------------------------------------------------------------------------------------------
# Studies
# --------------------------------------------------------------------------------------------

METRIC_NAMES = {"accuracy": "test accuracy", "mse": "test MSE"}


def varying_factors(runs: pd.DataFrame) -> list[str]:
    """The grid factors (``names.FACTORS`` order, seed excluded) that vary within ``runs``."""
    out = []
    for name in FACTORS:
        if name == "seed" or name not in runs:
            continue
        if runs[name].astype(object).where(runs[name].notna(), None).nunique(dropna=False) > 1:
            out.append(name)
    return out


def _cell_label(value: Any) -> str:
    if _is_missing(value):
        return MISSING
    if isinstance(value, Real) and not isinstance(value, bool):
        return format_number(value)
    return escape_latex(value)


# A study whose runs train at most this many steps measures initialization: its accuracies are
# not results (the meanfield study trains one step) and its table shows none.
INIT_ONLY_STEPS = 1
SUMMARY_COLUMNS = ("metric", "seeds", "test_metric", "test_low", "test_high", "test_interval", "loss",
                   "loss_low", "loss_high", "loss_interval", "diverged", "failed_to_train", "runs", "steps",
                   "tune_margin", "tune_bracket")


def _trained_steps(cell: pd.DataFrame) -> float:
    for column in ("steps_done", "steps", "max_steps"):
        if column in cell and cell[column].notna().any():
            return float(cell[column].astype(float).max())
    return math.nan


def _tuning_of(cell: pd.DataFrame) -> tuple[float, Optional[str]]:
    """A tuned cell's validation margin over the runner-up and its bracket (the summary's
    ``tune_margin`` and ``tune_bracket``, from ``gradatlas.workflow.tuning``); NaN and None
    for an untuned study, or a summary written before they were recorded."""
    if "tune_bracket" not in cell or not cell["tune_bracket"].notna().any():
        return math.nan, None
    margins = cell["tune_margin"].astype(float).dropna() if "tune_margin" in cell else pd.Series(dtype=float)
    return (float(margins.iloc[0]) if len(margins) else math.nan), str(cell["tune_bracket"].dropna().iloc[0])


def study_summary(runs: pd.DataFrame, study: str, factors: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Per cell of ``study``: seeds, test metric and final train loss with their intervals
    (``intervals.seed_interval``; MSE and losses on the log scale), diverged runs, runs that
    did not diverge but failed to train (``claims.failed_to_train``), the steps trained, and
    for a tuned study the choice's margin and bracket (``_tuning_of``).

    Failed runs are left out; diverged runs have no metric or loss (NaN, never a number) and
    are counted apart. Cells trained at most ``INIT_ONLY_STEPS`` steps get no metric or loss.
    """
    part = runs[runs["study"].astype(str) == study]
    if "status" in part:
        part = part[part["status"].astype(str) != "failed"]
    part = part.reset_index(drop=True)  # one label per run: the masks below align by index
    factors = list(factors) if factors is not None else varying_factors(part)
    keys = factors or ["cell"]
    rows = []
    if part.empty:
        return pd.DataFrame(columns=[*keys, *SUMMARY_COLUMNS])
    diverged_all = (part["status"].astype(str) == "diverged") if "status" in part else pd.Series(False, index=part.index)
    failed_all = failed_to_train(part) if {"first_loss", "final_train_loss", "chance", "metric"} <= set(part) \
        else pd.Series(False, index=part.index)
    for values, cell in part.groupby(keys, sort=True, dropna=False, observed=True):
        values = values if isinstance(values, tuple) else (values,)
        diverged = diverged_all.loc[cell.index]
        kept = cell[~diverged]
        metrics = sorted(set(cell["metric"].astype(str))) if "metric" in cell else []
        steps = _trained_steps(cell)
        if steps <= INIT_ONLY_STEPS:
            test = loss = intervals.Interval(math.nan, math.nan, math.nan, 0, "")
        else:
            test = intervals.seed_interval(kept["test_metric"].astype(float), log=metrics == ["mse"])
            loss = intervals.seed_interval(kept["final_train_loss"].astype(float), log=True)
        rows.append({**dict(zip(keys, values)), "metric": ", ".join(metrics),
                     "seeds": cell["seed"].nunique() if "seed" in cell else len(cell),
                     "test_metric": test.value, "test_low": test.low, "test_high": test.high,
                     "test_interval": test.method,
                     "loss": loss.value, "loss_low": loss.low, "loss_high": loss.high, "loss_interval": loss.method,
                     "diverged": int(diverged.sum()), "failed_to_train": int(failed_all.loc[cell.index].sum()),
                     "runs": len(cell), "steps": steps,
                     **dict(zip(("tune_margin", "tune_bracket"), _tuning_of(cell)))})
    return pd.DataFrame(rows)


# Appended to a tuned study's caption: what its last two columns say.
TUNED_CAPTION = (" Each cell trains with the settings its sweep chose on the validation split (the tuned "
                 "factors among the columns); margin: the chosen trial's mean validation metric over the "
                 "sweep seeds minus the runner-up's (-- where the runner-up failed on a seed); choice: "
                 "interior (inside the candidate list), extended (inside once the list was extended beyond "
                 "an end), edge (still at an end after the extension limit), or tied (at an end only by the "
                 "tie rule).")


def study_table(runs: pd.DataFrame, study: str, factors: Optional[Sequence[str]] = None,
                caption: Optional[str] = None) -> str:
    """Per cell of ``study``: the test metric and the final training loss with their intervals
    over seeds, diverged runs and runs that failed to train, as one long table. A study
    that trains at most ``INIT_ONLY_STEPS`` steps measures initialization: its table lists the
    cells and runs, without accuracies.

    Args:
        runs: the runs summary table.
        study: the study name; a study without runs gives a table that says so.
        factors: the factors that identify a cell (default: those that vary within the study).
        caption: caption source (default: generated from the study name and what it holds).
    """
    summary = study_summary(runs, study, factors)
    label = f"tab:study-{study}"
    name = escape_latex(study)
    if summary.empty:
        caption = caption or f"Study \\texttt{{{name}}}."
        body = _tabular("@{}l@{}", ["Outcome"], [[f"No runs of study \\texttt{{{name}}} at this scale."]])
        return _float(body, caption, label, wide=True)
    keys = [c for c in summary.columns if c not in SUMMARY_COLUMNS]
    init_only = bool((summary["steps"] <= INIT_ONLY_STEPS).all())
    if init_only:
        steps = int(summary["steps"].max())
        # One count where every cell ran one run per seed (a column of "3 3" says nothing twice).
        both = bool((summary["runs"] != summary["seeds"]).any())
        counts = ["seeds", "runs"] if both else ["seeds"]
        listed = escape_latex(keys[-1]) if len(keys) > 1 else ""
        caption = caption or (f"Study \\texttt{{{name}}} measures initialization: its runs train {steps} "
                              f"step{'s' if steps != 1 else ''}, so it has no test results; per cell, the seeds "
                              "(and the runs, where a cell has more runs than seeds)"
                              + (f"; the cells that differ only in {listed} share a row." if listed else "."))
        header = [escape_latex(k) for k in keys] + counts
        rows = _collapsed_rows(summary, keys, counts)
        # The listed values wrap in a paragraph column: one row per group, not one per value.
        columns = ("@{}" + "l" * (len(keys) - 1) + (r"p{0.55\linewidth}" if listed else "l")
                   + "r" * len(counts) + "@{}")
    else:
        caption = caption or (f"Study \\texttt{{{name}}}: per cell, the test metric and the final training "
                              "loss over seeds, mean [95\\% interval] for 4 or more seeds, mean (range) for 2--3 "
                              "(the loss and MSE geometric means, intervals on the log scale); diverged runs "
                              "(no metric or loss) and runs that did not diverge but failed to train (final "
                              "loss above the initial loss, or test skill at chance), out of all runs.")
        tuned = bool(summary["tune_bracket"].notna().any())
        if tuned:
            caption += TUNED_CAPTION
        metrics = sorted({m for ms in summary["metric"] for m in str(ms).split(", ") if m})
        mixed = len(metrics) != 1
        metric_header = "test metric" if mixed else METRIC_NAMES.get(metrics[0], f"test {metrics[0]}")
        header = [escape_latex(k) for k in keys] + (["metric"] if mixed else []) + \
            ["seeds", escape_latex(metric_header), "final train loss", "diverged", "failed"] + \
            (["margin", "choice"] if tuned else [])
        rows = []
        for row in summary.to_dict("records"):
            cells = [_cell_label(row[k]) for k in keys]
            if mixed:
                cells.append(escape_latex(row["metric"]))
            cells += [str(int(row["seeds"])),
                      value_with_ci(row["test_metric"], row["test_low"], row["test_high"], method=row["test_interval"]),
                      value_with_ci(row["loss"], row["loss_low"], row["loss_high"], method=row["loss_interval"]),
                      f"{int(row['diverged'])}/{int(row['runs'])}", f"{int(row['failed_to_train'])}/{int(row['runs'])}"]
            if tuned:
                cells += [format_number(row["tune_margin"]), escape_latex(row["tune_bracket"] or MISSING)]
            rows.append(cells)
        columns = "@{}" + "l" * (len(keys) + mixed) + "r l l r r" + (" r l" if tuned else "") + "@{}"
    return _long_table(columns, header, rows, caption, label)


def _collapsed_rows(summary: pd.DataFrame, keys: Sequence[str], counts: Sequence[str]) -> list[list[str]]:
    """One row per group of cells that differ only in the last key and share their counts: the
    other keys, the last key's values in order, the counts (an initialization study's grid of,
    say, 21 gains per activation then fills a few rows, not a page each)."""
    def text(row: dict) -> list[str]:
        return [_cell_label(row[k]) for k in keys[:-1]] + [str(int(row[c])) for c in counts]

    groups: dict[tuple, list[str]] = {}
    for row in summary.to_dict("records"):
        groups.setdefault(tuple(text(row)), []).append(_cell_label(row[keys[-1]]))
    if len(keys) == 1:  # nothing to group by: a row per cell
        return [[value, *counts_text] for counts_text, values in groups.items() for value in values]
    width = len(keys) - 1
    return [[*group[:width], ", ".join(values), *group[width:]] for group, values in groups.items()]


def frame_table(frame: pd.DataFrame, caption: str, label: Optional[str] = None, wide: bool = False) -> str:
    """Any small DataFrame as a booktabs table: text escaped, numbers in ``\\num{}``."""
    header = [escape_latex(c) for c in frame.columns]
    kinds = ["r" if pd.api.types.is_numeric_dtype(frame[c]) else "l" for c in frame.columns]
    rows = [[_cell_label(v) if not isinstance(v, str) else escape_latex(v) for v in row]
            for row in frame.itertuples(index=False)]
    if not rows:
        rows = [[MISSING] * len(header)]
    return _float(_tabular("@{}" + "".join(kinds) + "@{}", header, rows), caption, label, wide)


def grid_table(overview: pd.DataFrame, label: str = "tab:grid") -> str:
    """The appendix's grid overview (per study: cells, seeds, runs and their statuses)."""
    caption = ("The studies at this scale: grid cells, seeds per cell, runs, and how the runs ended "
               "(ok, diverged, failed)" + ("; underflow: runs in which a probed float32 gradient was 0 or "
                                           "subnormal (those layers are left out of every fit)."
                                           if "underflow" in overview else "."))
    # Full width: study names and six count columns overflow one column of a two-column page.
    return frame_table(overview, caption, label, wide=True)


# --------------------------------------------------------------------------------------------
# Macros
# --------------------------------------------------------------------------------------------

_ONES = ["Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten", "Eleven",
         "Twelve", "Thirteen", "Fourteen", "Fifteen", "Sixteen", "Seventeen", "Eighteen", "Nineteen"]
_TENS = ["", "", "Twenty", "Thirty", "Forty", "Fifty", "Sixty", "Seventy", "Eighty", "Ninety"]


def number_words(n: int) -> str:
    """A non-negative integer in CamelCase English words: 15 -> 'Fifteen', 121 -> 'OneHundredTwentyOne'."""
    if n < 0:
        raise ValueError(f"number_words needs n >= 0, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + (_ONES[n % 10] if n % 10 else "")
    for size, word in ((10**9, "Billion"), (10**6, "Million"), (1000, "Thousand"), (100, "Hundred")):
        if n >= size:
            return number_words(n // size) + word + (number_words(n % size) if n % size else "")
    raise AssertionError("unreachable")


def macro_name(key: str, prefix: str = "") -> str:
    """A valid LaTeX macro name (letters only) for ``key``.

    A key of letters only is kept as it is (``GANumRuns`` -> ``GANumRuns``). Otherwise the key is
    split into words and numbers at any other character; each word is capitalised and each
    number spelt out (a decimal as ``...Point...``): ``claim1_value`` -> ``ClaimOneValue``,
    ``gain_1.5`` -> ``GainOnePointFive``. ``prefix`` (letters) is prepended.

    Raises:
        ValueError: when the key has no letters or digits, or the prefix is not letters only.
    """
    if prefix and not prefix.isalpha():
        raise ValueError(f"macro prefix must be letters only, got {prefix!r}")
    if key.isascii() and key.isalpha():
        return prefix + key
    tokens = re.findall(r"\d+\.\d+|\d+|[A-Za-z]+", key)
    if not tokens:
        raise ValueError(f"cannot make a macro name from {key!r}")
    words = []
    for token in tokens:
        if token[0].isdigit():
            whole, _, frac = token.partition(".")
            word = number_words(int(whole))
            if frac:
                word += "Point" + "".join(_ONES[int(d)] for d in frac)
            words.append(word)
        else:
            words.append(token[0].upper() + token[1:])
    return prefix + "".join(words)


def macro_value(value: Any) -> str:
    """The body of a number macro: integers plain, other numbers in ``\\num{}``, text escaped,
    NaN/None as ``--``."""
    if _is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        return format_number(value)
    return escape_latex(value)


def numbers_macros(values: Mapping[str, Any], prefix: str = "") -> str:
    """``\\newcommand{\\Name}{value}`` lines, one per entry, names made valid by ``macro_name``.

    Raises:
        ValueError: when two keys map to the same macro name.
    """
    seen: dict[str, str] = {}
    lines = ["% Generated by gradatlas: every number the paper quotes. Do not edit."]
    for key, value in values.items():
        name = macro_name(str(key), prefix)
        if name in seen:
            raise ValueError(f"keys {seen[name]!r} and {key!r} both map to macro \\{name}")
        seen[name] = str(key)
        lines.append(rf"\newcommand{{\{name}}}{{{macro_value(value)}}}")
    return "\n".join(lines) + "\n"


def caption_macros(captions: Mapping[str, str], prefix: str = "GACaption") -> str:
    """``\\newcommand{\\GACaption<Name>}{caption}`` per figure (captions are LaTeX source, not
    escaped): ``hidden_grad_vs_distance`` -> ``\\GACaptionHiddenGradVsDistance``."""
    lines = ["% Figure captions generated from what the data holds."]
    for name, caption in captions.items():
        lines.append(rf"\newcommand{{\{macro_name(name.title().replace('_', ''), prefix)}}}{{{caption}}}")
    return "\n".join(lines) + "\n"



def _deciding_text(name: Any, value: Any, low: Any, high: Any, method: Any = "") -> str:
    return f"{escape_latex(name)} = {value_with_ci(value, low, high, method=method or '')}"


def _verdict_words(verdict: str, would_be: Any) -> str:
    """'inconclusive (unstable; would be mixed)' for an unstable verdict, else the verdict."""
    if verdict == "inconclusive (unstable)" and not _is_missing(would_be):
        return f"inconclusive (unstable; would be {escape_latex(would_be)})"
    return escape_latex(verdict)


def claim_sentence(row: Any) -> str:
    """One claim's verdict as the paper prints it (LaTeX): its number, title, summary verdict
    (the would-be one beside an unstable verdict) and stability, the decisive sub-claims'
    tally, and the deciding sub-claim with its value and adjusted interval (for ``mixed``, one
    supported and one contradicted sub-claim)."""
    verdict = _verdict_words(row.verdict, row.would_be)
    text = rf"\textbf{{Claim {int(row.claim)}, {escape_latex(row.title)}: {verdict}}}"
    if not _is_missing(row.stability) and row.verdict != "no data at this scale":
        text += f" (stability {float(row.stability):.2f})"
    counts = [(row.sub_supported, "supported"), (row.sub_contradicted, "contradicted"),
              (row.sub_inconclusive, "inconclusive"), (row.sub_no_data, "without data")]
    tally = ", ".join(f"{int(k)} {word}" for k, word in counts if not _is_missing(k) and k)
    if tally:
        text += f". Decisive sub-claims: {tally}"
    if isinstance(row.deciding, str) and row.deciding and not _is_missing(row.value):
        label = "contradicted" if row.would_be == "mixed" else "deciding"
        text += (f". {label.capitalize()}: "
                 + _deciding_text(row.deciding, row.value, row.adj_low, row.adj_high, row.interval))
    if isinstance(row.counter, str) and row.counter:
        text += "; supported: " + _deciding_text(row.counter, row.counter_value, row.counter_adj_low,
                                                 row.counter_adj_high)
    return text + "."


def claim_macros(verdicts: pd.DataFrame, prefix: str = "GA") -> str:
    """Per claim N, the macros the prose prints instead of typing a number or a verdict word:
    ``\\GAClaim<N>Verdict``, ``...Stability``, ``...Value`` (the deciding value with its
    adjusted interval), ``...Deciding`` (its sub-claim) and ``...Sentence`` (``claim_sentence``),
    N spelt out (``\\GAClaimTwentyTwoVerdict``)."""
    lines = ["% Per-claim verdicts, generated from the ledger: the prose prints these, never types them."]
    for row in verdicts.itertuples(index=False):
        claim = int(row.claim)
        values = {
            "verdict": _verdict_words(row.verdict, row.would_be),
            "stability": MISSING if _is_missing(row.stability) else f"{float(row.stability):.2f}",
            "value": value_with_ci(row.value, row.adj_low, row.adj_high, method=row.interval or ""),
            "deciding": escape_latex(row.deciding) if isinstance(row.deciding, str) and row.deciding else MISSING,
            "sentence": claim_sentence(row),
        }
        for field, body in values.items():
            lines.append(rf"\newcommand{{\{macro_name(f'claim{claim}_{field}', prefix)}}}{{{body}}}")
    return "\n".join(lines) + "\n"

"""LaTeX tables and macros: content, escaping, missing values, and that they compile."""

from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from gradatlas.analysis import tables
from gradatlas.analysis.claims import RESULT_COLUMNS


def verdicts_frame() -> pd.DataFrame:
    part_lines = ("per-layer factor (50% of layers): 0.142 [0.12, 0.16] (log-t), n=5 -> supported, stability 0.97\n"
                  "update ratio: 0.01 [0.005, 0.02] (log-t), n=5 -> supported, stability 1.00\n"
                  "(reported) R^2: 0.99, n=5 -> inconclusive (informational)")
    rows = [
        {"claim": 1, "title": "Sigmoid gradients_vanish", "statement": "s", "study": "depth_activation_init",
         "metric": "m", "parts": part_lines, "deciding": "per-layer factor (50% of layers)", "value": 0.14249,
         "ci_low": 0.1203, "ci_high": 0.16, "adj_low": 0.11, "adj_high": 0.17, "interval": "log-t", "n": 5,
         "verdict": "supported", "would_be": "supported", "stability": 0.97, "rule": "CI < 1 & more", "detail": "",
         "sub_supported": 2, "sub_contradicted": 0, "sub_inconclusive": 0, "sub_no_data": 0, "reported": 1,
         "counter": ""},
        {"claim": 2, "title": "tanh vs sigmoid", "statement": "s", "study": "depth_activation_init",
         "metric": "factor tanh / sigmoid", "parts": "ratio: nan, n=0 -> no data at this scale", "deciding": "ratio",
         "value": np.nan, "ci_low": np.nan, "ci_high": np.nan, "interval": "", "n": 0,
         "verdict": "no data at this scale", "would_be": "no data at this scale", "stability": 1.0, "rule": "r",
         "detail": "", "sub_supported": 0, "sub_contradicted": 0, "sub_inconclusive": 0, "sub_no_data": 1,
         "reported": 0, "counter": ""},
        {"claim": 3, "title": "two statements", "statement": "s", "study": "x", "metric": "m",
         "parts": "a: 2.5 [2, 3], n=5 -> supported\nb: -1 [-2, -0.5], n=5 -> contradicted", "deciding": "b",
         "value": -1.0, "ci_low": -2.0, "ci_high": -0.5, "adj_low": -2.5, "adj_high": -0.2, "interval": "t", "n": 5,
         "verdict": "inconclusive (unstable)", "would_be": "mixed", "stability": 0.62, "rule": "r", "detail": "",
         "sub_supported": 1, "sub_contradicted": 1, "sub_inconclusive": 0, "sub_no_data": 0, "reported": 0,
         "counter": "a", "counter_value": 2.5, "counter_adj_low": 1.5, "counter_adj_high": 3.5},
    ]
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def runs_frame() -> pd.DataFrame:
    rows = []
    for init in ("he_normal", "default"):
        for seed in range(3):
            diverged = init == "default" and seed == 2
            rows.append({"run": f"s/init-{init}/seed-{seed}", "study": "init_study", "cell": f"init-{init}",
                         "seed": seed, "model": "mlp", "depth": 10.0, "activation": "relu", "init": init,
                         "status": "diverged" if diverged else "ok", "metric": "accuracy",
                         "test_metric": np.nan if diverged else 0.5 + 0.1 * seed,
                         "final_train_loss": np.nan if diverged else 1.0})
    return pd.DataFrame(rows)


def test_escape_latex_specials():
    assert tables.escape_latex("a_b 50% & $x$ #1 {y}") == r"a\_b 50\% \& \$x\$ \#1 \{y\}"
    assert tables.escape_latex("~^\\") == r"\textasciitilde{}\textasciicircum{}\textbackslash{}"
    assert tables.escape_latex("|a| < b") == r"\textbar{}a\textbar{} \textless{} b"


def test_ascii_symbols_of_the_sub_claims_print_as_math_and_nothing_else_changes():
    assert tables.escape_latex("sigma_w^2 = 0.25, sigma_b^2 = 0") == r"$\sigma_w^2$ = 0.25, $\sigma_b^2$ = 0"
    assert tables.escape_latex("chi_1^((L-1)/2) > 10") == r"$\chi_1^{(L-1)/2}$ \textgreater{} 10"
    assert tables.escape_latex("depth < c xi_c; dL/dh_t kept") == r"depth \textless{} c $\xi_c$; $\partial L/\partial h_t$ kept"
    assert tables.escape_latex("L^-0.475, R^2") == r"$L^{-0.475}$, $R^2$"
    # Only whole tokens: a longer name keeps its underscore and caret escaped.
    assert tables.escape_latex("xsigma_w^2 chi_10") == r"xsigma\_w\textasciicircum{}2 chi\_10"


def test_format_number():
    assert tables.format_number(np.nan) == "--"
    assert tables.format_number(None) == "--"
    assert tables.format_number(0.123456) == r"\num{0.123}"
    # Integers bare: siunitx's round-mode=figures would print \num{2} as 2.00.
    assert tables.format_number(np.int64(12)) == "12"
    assert tables.format_number(10.0) == "10"
    assert tables.format_number(-3.0) == "$-3$"
    assert tables.format_number(3.2e-9) == r"\num{3.2e-09}"
    assert tables.format_number(math.inf) == r"$\infty$"
    assert tables.value_with_ci(0.5, 0.4, 0.6) == r"\num{0.5} [\num{0.4}, \num{0.6}]"
    assert tables.value_with_ci(0.5, np.nan, np.nan) == r"\num{0.5}"
    assert tables.value_with_ci(2.0, 1.0, 3.5, method="range") == r"2 (1--\num{3.5})"


def test_claims_table_content():
    tex = tables.claims_table(verdicts_frame())
    assert tex.startswith(r"\begin{table*}") and r"\label{tab:claims}" in tex
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    header = tex[tex.index(r"\toprule"):tex.index(r"\midrule")]
    for column in ("Sub-claims", "Deciding sub-claim: value [adjusted interval]", "$n$", "Verdict", "Stab."):
        assert column in header
    body = tex[tex.index(r"\midrule"):tex.index(r"\bottomrule")]
    lines = [line for line in body.splitlines() if line.endswith(r"\\")]
    assert len(lines) == 3
    # The sub-claims' verdicts are counted from the ledger's columns, the interval is the adjusted one.
    assert lines[0].startswith("1 & \\raggedright Sigmoid gradients\\_vanish & \\raggedright 2 S (+ 1 reported) & "
                               "\\raggedright per-layer factor (50\\% of layers): \\num{0.142} [\\num{0.11}, \\num{0.17}]")
    assert r"& 5 & \raggedright supported & 0.97" in lines[0]
    assert "1 N" in lines[1] and "no data at this scale" in lines[1]
    # A mixed claim names its contradicted and its supported sub-claim; an unstable verdict shows
    # the would-be verdict beside it.
    assert "1 S, 1 C" in lines[2] and r"\emph{supported:} a" in lines[2]
    assert "inconclusive (unstable) (mixed) & 0.62" in lines[2]



def header_and_rows(tex: str) -> tuple[str, list[str]]:
    """A long table's header line and its body rows (the rows after ``\\endlastfoot``)."""
    lines = tex.splitlines()
    header = lines[lines.index(r"\toprule") + 1]
    start, end = lines.index(r"\endlastfoot") + 1, lines.index(r"\end{longtable}")
    return header, lines[start:end]


def test_study_table_content():
    tex = tables.study_table(runs_frame(), "init_study")
    assert r"\label{tab:study-init_study}" in tex and r"\texttt{init\_study}" in tex
    header, rows = header_and_rows(tex)
    assert header.startswith("init & seeds & test accuracy") and header.endswith(r"diverged & failed \\")
    assert len(rows) == 2
    default = next(r for r in rows if r.startswith("default"))
    he = next(r for r in rows if r.startswith(r"he\_normal"))
    # he_normal: 3 seeds, accuracy 0.5, 0.6, 0.7 -> mean 0.6 with the range of the 3 seeds;
    # default: one diverged of three, left out of the mean (no accuracy).
    assert r"\num{0.6} (\num{0.5}--\num{0.7})" in he and he.endswith(r"0/3 & 0/3 \\")
    assert r"\num{0.55} (\num{0.5}--\num{0.6})" in default and default.endswith(r"1/3 & 0/3 \\")


def test_a_tuned_study_table_shows_each_cells_choice_margin_and_bracket():
    # As aggregate tabulates a tuned study: the chosen lr per cell, its margin and bracket.
    from gradatlas.workflow.aggregate import tuning_columns

    notes = {"he_normal": {"tuning": {"margin": 0.125, "bracket": "interior"}},
             "default": {"tuning": {"margin": None, "bracket": "edge"}}}
    runs = runs_frame()
    runs["lr"] = runs["init"].map({"he_normal": 0.03, "default": 0.333})
    extra = pd.DataFrame([tuning_columns(notes[init]) for init in runs["init"]], index=runs.index)
    tex = tables.study_table(pd.concat([runs, extra], axis=1), "init_study")
    header, rows = header_and_rows(tex)
    assert header.startswith("init & lr & seeds") and header.endswith(r"failed & margin & choice \\")
    he = next(r for r in rows if r.startswith(r"he\_normal"))
    default = next(r for r in rows if r.startswith("default"))
    assert r"& \num{0.03} &" in he and he.endswith(r"0/3 & \num{0.125} & interior \\")
    assert r"& \num{0.333} &" in default and default.endswith(r"0/3 & -- & edge \\")
    assert "margin: the chosen trial's mean validation metric" in tex
    assert "margin" not in tables.study_table(runs_frame(), "init_study")
    assert tuning_columns({})["tune_bracket"] is None and math.isnan(tuning_columns({})["tune_margin"])


def test_a_long_study_table_is_one_longtable_with_every_row_and_handles_missing_studies():
    runs = pd.concat([runs_frame().assign(depth=float(d), cell=lambda f, d=d: f["cell"] + f"-{d}") for d in range(5)])
    tex = tables.study_table(runs, "init_study", factors=["init", "depth"])
    assert tex.count(r"\begin{longtable}") == 1 and tex.count(r"\label{") == 1 and r"\endhead" in tex
    assert len(header_and_rows(tex)[1]) == 10
    empty = tables.study_table(runs, "not_run")
    assert r"\label{tab:study-not_run}" in empty and "No runs" in empty


def test_study_table_shows_nan_factor_as_dashes():
    runs = runs_frame().assign(bias=[np.nan, np.nan, np.nan, -1.0, -1.0, -1.0])
    tex = tables.study_table(runs, "init_study", factors=["bias"])
    assert "\n-- & 3 &" in tex and "$-1$ & 3 &" in tex


def test_grid_table():
    overview = pd.DataFrame({"study": ["depth_activation_init"], "cells": [8], "seeds": [1], "runs": [8],
                             "ok": [8], "diverged": [0], "failed": [0]})
    tex = tables.grid_table(overview)
    assert r"\label{tab:grid}" in tex and r"depth\_activation\_init & 8 & 1 & 8" in tex


def test_macro_names():
    assert tables.macro_name("claim1_value") == "ClaimOneValue"
    assert tables.macro_name("claim15_ci_low") == "ClaimFifteenCiLow"
    assert tables.macro_name("gain_1.5") == "GainOnePointFive"
    assert tables.macro_name("GANumRuns") == "GANumRuns"
    assert tables.macro_name("n_runs", prefix="GA") == "GANRuns"
    assert tables.number_words(121) == "OneHundredTwentyOne"
    assert tables.number_words(2000) == "TwoThousand"
    with pytest.raises(ValueError):
        tables.macro_name("__")


def test_numbers_macros():
    tex = tables.numbers_macros({"GANumRuns": 45, "claim1_value": 0.12345, "GACommit": "abc_1", "missing": np.nan})
    assert r"\newcommand{\GANumRuns}{45}" in tex
    assert r"\newcommand{\ClaimOneValue}{\num{0.123}}" in tex
    assert r"\newcommand{\GACommit}{abc\_1}" in tex
    assert r"\newcommand{\missing}{--}" in tex
    with pytest.raises(ValueError, match="both map"):
        tables.numbers_macros({"claim1": 1, "Claim_1": 2})


def _kpsewhich(name: str) -> bool:
    tool = shutil.which("kpsewhich")
    if tool is None:
        return False
    return bool(subprocess.run([tool, name], capture_output=True, text=True).stdout.strip())


@pytest.mark.workflow  # LaTeX: the workflow lane
def test_tables_compile_with_pdflatex(tmp_path):
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex is not installed")
    if not (_kpsewhich("booktabs.sty") and _kpsewhich("siunitx.sty")):
        pytest.skip("booktabs or siunitx is not installed")
    verdicts = verdicts_frame()
    # Claim 1 with a replica on digits (8x8 images: the caption's \texttimes must compile too).
    replica = {"verdict_digits": "contradicted", "would_be_digits": "contradicted", "deciding_digits": "x_y 5%",
               "value_digits": 0.5, "ci_low_digits": 0.4, "ci_high_digits": 0.6, "interval_digits": "t",
               "n_digits": 4, "stability_digits": 0.95}
    for column, value in replica.items():
        verdicts[column] = verdicts[column].astype(object)
        verdicts.loc[0, column] = value
    macros = tables.numbers_macros({"GANumRuns": 45, "claim1_value": 0.5, "GACommit": "a_b%c",
                                    "GAVerdict": "no data at this scale"})
    from test_claims import Builder  # the synthetic-summary builder of the claims tests

    from gradatlas.analysis import claims

    b = Builder()
    for seed in range(4):
        b.geometric(b.run("depth_activation_init", seed, activation="sigmoid", init="default"), 0.2 + 0.01 * seed)
    parts = claims.parts_frame(claims.evaluate(*b.tables(), draws=100))
    body = "\n".join([tables.claims_table(verdicts), tables.replica_table(verdicts), tables.claim_parts_table(parts),
                      tables.study_table(runs_frame(), "init_study"), tables.study_table(runs_frame(), "absent"),
                      tables.grid_table(pd.DataFrame({"study": ["a_b"], "runs": [3]}))])
    doc = "\n".join([
        r"\documentclass[10pt,twocolumn]{article}", r"\usepackage{booktabs}", r"\usepackage{siunitx}",
        r"\usepackage{longtable}",
        r"\sisetup{round-mode=figures,round-precision=3}", macros, r"\begin{document}",
        r"Runs: \GANumRuns, \ClaimOneValue, \GACommit, \GAVerdict.", r"\onecolumn", body,
        r"\end{document}", ""])
    (tmp_path / "doc.tex").write_text(doc)
    done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0


def _loss_runs(losses, metric="accuracy") -> pd.DataFrame:
    return pd.DataFrame([{"run": f"s/c/seed-{i}", "study": "s", "cell": "c", "seed": i, "status": "ok",
                          "metric": metric, "chance": 0.1, "first_loss": 2.3, "test_metric": 0.5 + 0.01 * i,
                          "final_train_loss": loss, "steps_done": 100} for i, loss in enumerate(losses)])


def test_study_table_loss_intervals_are_never_negative():
    # Loss over decades (one seed blew up to 3.5e7): a t interval on raw values would reach -2e7.
    summary = tables.study_summary(_loss_runs([3.5e7, 2.0, 0.5, 1.2e3, 7.0]), "s")
    row = summary.iloc[0]
    assert row["loss_interval"] == "log-t" and 0 < row["loss_low"] < row["loss"] < row["loss_high"]
    assert row["failed_to_train"] == 3  # three final losses above the initial 2.3 (the accuracy is above chance)


def test_study_table_of_an_initialization_study_shows_no_results():
    runs = _loss_runs([2.3, 2.2]).assign(steps_done=1)
    tex = tables.study_table(runs, "s")
    assert "measures initialization" in tex and "accuracy" not in tex and r"\num{0.5" not in tex
    header, rows = header_and_rows(tex)
    assert header.endswith(r"& seeds \\") and "runs" not in header  # one run per seed: one count


def test_an_initialization_study_lists_the_values_of_its_last_factor_in_one_row_per_group():
    rows = [{"run": f"w/{act}/{gain}/{seed}", "study": "w", "cell": f"activation-{act}/gain-{gain}", "seed": seed,
             "model": "mlp", "activation": act, "gain": gain, "status": "ok", "metric": "accuracy",
             "test_metric": 0.5, "final_train_loss": 2.3, "steps_done": 1}
            for act in ("relu", "tanh") for gain in (0.5, 1.0, 2.0) for seed in range(3 if act == "relu" else 2)]
    tex = tables.study_table(pd.DataFrame(rows), "w")
    assert "differ only in gain share a row" in tex
    header, body = header_and_rows(tex)
    assert header.startswith("activation & gain & seeds")
    assert body == [r"relu & \num{0.5}, 1, 2 & 3 \\", r"tanh & \num{0.5}, 1, 2 & 2 \\"]
    # Cells of other counts are not merged: one cell of relu with a fourth seed gets its own row.
    extra = pd.DataFrame(rows + [{**rows[0], "run": "w/relu/0.5/3", "seed": 3}])
    _, body = header_and_rows(tables.study_table(extra, "w"))
    assert body == [r"relu & \num{0.5} & 4 \\", r"relu & 1, 2 & 3 \\", r"tanh & \num{0.5}, 1, 2 & 2 \\"]


def test_integers_print_bare_in_every_table():
    runs = runs_frame()
    tex = tables.study_table(runs, "init_study", factors=["init", "depth"])
    assert r"\num{10}" not in tex and "& 10 &" in tex
    assert "\\num{" not in tables.macro_value(45) and tables.macro_value(6.0) == "6"


def test_caption_macros():
    tex = tables.caption_macros({"hidden_grad_vs_distance": r"Norm of $h_t$ on the adding problem."})
    assert r"\newcommand{\GACaptionHiddenGradVsDistance}{Norm of $h_t$ on the adding problem.}" in tex


def test_grid_overview_counts_underflow_only_where_the_summary_has_it():
    from gradatlas.analysis.commands import grid_overview

    runs = runs_frame()
    assert "underflow" not in grid_overview(runs, ["init_study"])  # older summaries: no column, no guess
    runs = runs.assign(underflow_probes=[0, 3, 0, 0, 1, np.nan])
    overview = grid_overview(runs, ["init_study", "absent"])
    assert list(overview["underflow"]) == [2, 0]
    assert "subnormal" in tables.grid_table(overview)


def test_claim_parts_table_lists_every_part_with_its_role():
    from gradatlas.analysis import claims

    parts = pd.DataFrame([
        {"claim": 1, "part": "factor_a", "value": 0.2, "ci_low": 0.1, "ci_high": 0.3, "interval": "log-t", "n": 4,
         "verdict": "supported", "stability": 0.97, "decisive": True, "deciding": True, "note": "2 underflowing"},
        {"claim": 1, "part": "r2", "value": 0.99, "ci_low": np.nan, "ci_high": np.nan, "interval": "one seed",
         "n": 1, "verdict": "inconclusive", "stability": 1.0, "decisive": False, "deciding": False, "note": ""},
    ], columns=list(claims.PART_COLUMNS))
    tex = tables.claim_parts_table(parts)
    assert tex.count(r"\begin{longtable}") == 1 and tex.count(r"\label{tab:claim-parts}") == 1
    assert len(header_and_rows(tex)[1]) == 2
    assert r"factor\_a \newline {\scriptsize 2 underflowing}" in tex and "& deciding & 0.97" in tex
    assert "& reported & 1.00" in tex


def _sensitivity_rows(verdicts):
    return pd.DataFrame([{"claim": i + 1, "threshold": f"T_{i}", "meaning": "separates a from b", "value": 0.2,
                          "search_low": 0.1, "search_high": 0.4, "log": True, "verdict": verdict,
                          "stable_low": 0.1, "stable_high": 0.3, "open_low": True, "open_high": False,
                          "verdict_below": verdict, "verdict_above": "mixed"} for i, verdict in enumerate(verdicts)])


def test_sensitivity_table_leaves_out_claims_without_data_in_one_long_table():
    frame = _sensitivity_rows(["supported"] * 5 + ["no data at this scale"] * 3)
    tex = tables.sensitivity_table(frame)
    assert r"T\_5" not in tex and r"T\_4" in tex
    assert tex.count(r"\begin{longtable}") == 1 and len(header_and_rows(tex)[1]) == 5
    assert r"\num{0.1} (open) to \num{0.3} (then mixed)" in tex


def test_claim_macros_print_each_claims_verdict_value_and_sentence():
    tex = tables.claim_macros(verdicts_frame())
    assert r"\newcommand{\GAClaimOneVerdict}{supported}" in tex
    assert r"\newcommand{\GAClaimOneValue}{\num{0.142} [\num{0.11}, \num{0.17}]}" in tex
    assert r"\newcommand{\GAClaimThreeStability}{0.62}" in tex
    sentences = {line.split("}{", 1)[0]: line for line in tex.splitlines() if "Sentence}" in line}
    one = sentences[r"\newcommand{\GAClaimOneSentence"]
    assert r"\textbf{Claim 1, Sigmoid gradients\_vanish: supported} (stability 0.97)" in one
    assert "Decisive sub-claims: 2 supported" in one and r"Deciding: per-layer factor (50\% of layers)" in one
    # An unstable verdict says what it would be; a would-be mixed claim names both sides.
    three = sentences[r"\newcommand{\GAClaimThreeSentence"]
    assert "inconclusive (unstable; would be mixed)" in three
    assert r"Contradicted: b = $-1$ [\num{-2.5}, \num{-0.2}]; supported: a = \num{2.5} [\num{1.5}, \num{3.5}]" in three
    # A claim without data prints no deciding value.
    two = sentences[r"\newcommand{\GAClaimTwoSentence"]
    assert "no data at this scale" in two and "Deciding" not in two


def test_setup_numbers_count_each_stacks_wall_time_once():
    from gradatlas.analysis.commands import setup_numbers

    runs = pd.DataFrame({"stack_id": ["a", "a", "a", "b"], "wall_time_s": [3600.0, 3600.0, 3600.0, 1800.0],
                         "width": [64.0, 64.0, 128.0, 64.0], "depth": [2.0, 4.0, 4.0, 30.0],
                         "epochs": [20.0] * 4, "batch_size": [128.0] * 4, "optimizer": ["sgd", "sgd", "adam", "sgd"],
                         "lr": [0.01, 0.1, 0.001, 0.5], "study": ["s"] * 4})
    numbers = setup_numbers(runs)
    assert numbers["GACoreHours"] == 1.5 and numbers["GANumStacks"] == 2
    assert numbers["GAWidths"] == "64, 128" and (numbers["GADepthMin"], numbers["GADepthMax"]) == (2, 30)
    assert numbers["GAOptimizers"] == "Adam, SGD" and (numbers["GALrMin"], numbers["GALrMax"]) == (0.001, 0.5)


def test_the_verification_paragraph_quotes_the_report_or_says_none_is_on_record():
    from gradatlas.workflow.verify import verification_text

    assert "No verification of these runs is on record" in verification_text(None)
    text = verification_text({"sample": 10})
    assert r"\GAVerifyIdentical{} were identical" in text and r"\num{1e-05}" in text

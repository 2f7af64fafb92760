"""Claim 8: gradient clipping prevents divergence where gradients explode, and the clipped runs train."""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import pandas as pd

from gradatlas.analysis import intervals, theory
from gradatlas.analysis.claims.catalog import recurrent_gain
from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import TRAIN_SKILL_THRESHOLD, by_seed, diverged, failed_to_train, skill
from gradatlas.analysis.claims.parts import Part, missing, seed_part, share_difference_part
from gradatlas.analysis.claims.summary import Tables, per_tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, reported

MLP_STUDY, RNN_STUDY = "clipping_mlp", "clipping_rnn"
STUDIES = (MLP_STUDY, RNN_STUDY)
# The MLP study's learning rates above this one explode (its He-initialized forward pass is
# preserved, so only the step size makes the gradient blow up); at and below it the cells are
# reported. The RNN study's cells explode above the mean field's crossing gain (claim 19).
STABLE_LR = 1.0
DIFFERENCE_BOUND = Threshold("DIFFERENCE_BOUND", 0.0, "share of diverged runs, unclipped - clipped, that clipping "
                             "must exceed", -0.5, 0.5)
DIVERGING_SHARE = Threshold("DIVERGING_SHARE", 0.5, "share of unclipped runs that diverge above which a cell's "
                            "clipped runs must train", 0.1, 0.9)
TRAIN_SKILL = TRAIN_SKILL_THRESHOLD
THRESHOLDS = (DIFFERENCE_BOUND, DIVERGING_SHARE, TRAIN_SKILL)


def _exploding_cells(t: Tables) -> list[tuple[str, str, pd.DataFrame, bool]]:
    """(study, cell label, runs, whether the gradient explodes there) per learning rate or gain."""
    cells = []
    mlp = t.select(MLP_STUDY)
    for lr, runs in mlp.groupby("lr"):
        cells.append((MLP_STUDY, f"lr {lr:g}", runs, lr > STABLE_LR))
    rnn = t.select(RNN_STUDY)
    crossing = math.nan
    if not rnn.empty and str(rnn["data"].iloc[0]) in theory.INPUT_POWER:
        crossing = theory.crossing_gain(recurrent_gain.predicted_factor_of_gain(rnn))
    for gain, runs in rnn.groupby("gain"):
        cells.append((RNN_STUDY, f"gain {gain:g}", runs, bool(gain > crossing)))
    return cells


def _counts(frame: pd.DataFrame) -> tuple[int, int]:
    return int(diverged(frame).sum()), int(failed_to_train(frame).sum())


class _Cell(NamedTuple):
    """One cell of ``_exploding_cells`` as the claim reads it: its label, whether its gradient
    explodes, and (None where it lacks runs with or without clipping) the unclipped and clipped
    runs' counts: runs, diverged, failed to train; and the clipped runs' skill by seed."""

    where: str
    explodes: bool
    unclipped: Optional[tuple[int, int, int]] = None
    clipped: Optional[tuple[int, int, int]] = None
    clipped_skill: Optional[pd.Series] = None


@per_tables
def _measured_cells(t: Tables) -> list[_Cell]:
    """Every cell of ``_exploding_cells`` with its counts, once per summary."""
    cells = []
    for study, label, runs, explodes in _exploding_cells(t):
        none, clipped = runs[runs["clip"] == "none"], runs[runs["clip"] != "none"]
        where = f"{study} {label}" + ("" if explodes else ", gradient not exploding: reported")
        if none.empty or clipped.empty:
            cells.append(_Cell(where, explodes))
            continue
        # A clipped run that diverged did not train: skill 0 (chance), said in the note.
        values = by_seed(clipped, skill(clipped).where(~diverged(clipped), 0.0))
        cells.append(_Cell(where, explodes, (len(none), *_counts(none)), (len(clipped), *_counts(clipped)), values))
    return cells


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per cell where the gradient explodes: diverged share, unclipped - clipped; the clipped runs' skill."""
    parts: list[Part] = []
    for cell in _measured_cells(t):
        where, explodes = cell.where, cell.explodes
        if cell.unclipped is None:
            parts.append(missing(f"{where}: share diverged, unclipped - clipped", "needs runs with and without "
                                 "clipping", explodes))
            continue
        (n1, d1, f1), (n2, d2, f2) = cell.unclipped, cell.clipped
        note = f"unclipped: {d1} diverged, {f1} failed to train of {n1}; clipped: {d2} diverged, {f2} failed to train of {n2}"
        parts.append(share_difference_part(f"{where}: share diverged, unclipped - clipped", d1, n1, d2, n2,
                                           above(th.DIFFERENCE_BOUND), note=note, decisive=explodes))
        parts.append(share_difference_part(f"{where}: share failed to train (not diverged), unclipped - clipped",
                                           f1, n1, f2, n2, reported, decisive=False))
        if d1 > th.DIVERGING_SHARE * n1:
            lost = f"{d2} diverged clipped run(s) counted at skill 0" if d2 else ""
            parts.append(seed_part(f"{where}: skill of the clipped runs where unclipped ones diverge",
                                   cell.clipped_skill, above(th.TRAIN_SKILL), note=lost, decisive=explodes))
    if not any(p.decisive for p in parts):
        parts.append(missing("share diverged, unclipped - clipped, where the gradient explodes",
                             "no cell of the clipping studies where the gradient explodes"))
    return parts


CLAIM = Claim(
    8, "Clipping prevents divergence",
    "Gradient clipping prevents divergence where gradients explode (RNNs, large inits).",
    STUDIES,
    "per cell where the gradient explodes: share of diverged runs, without minus with clipping; the clipped "
    "runs' skill where the unclipped ones diverge",
    rule_text(f"Cells are learning rates of {MLP_STUDY} (He-initialized ReLU MLP: the forward pass is preserved) "
              f"and gains of {RNN_STUDY} (tanh RNN, orthogonal weights); a cell's gradient explodes above "
              f"lr {STABLE_LR:g} resp. above the mean field's crossing gain (claim {recurrent_gain.CLAIM.id}); the "
              f"other cells are reported. Per exploding cell, never pooled: clipping prevents divergence if "
              f"Newcombe's {intervals.CONFIDENCE:.0%} interval of the share of diverged runs, unclipped minus "
              f"clipped, lies above {DIFFERENCE_BOUND:g} (contradicted below it); runs that failed to train "
              f"without diverging (final training loss above the first, or skill at chance) are counted apart and "
              f"reported. Where more than {DIVERGING_SHARE:g} of the unclipped runs diverge, the clipped runs train "
              f"if the interval of their skill (diverged ones at 0) lies above {TRAIN_SKILL:g} (contradicted below "
              f"it)."),
    compute, THRESHOLDS)

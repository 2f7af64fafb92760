"""Claim 8: gradient clipping prevents divergence where gradients explode."""

from __future__ import annotations

import pandas as pd

from gradatlas.analysis import intervals
from gradatlas.analysis.claims.claim import Claim
from gradatlas.analysis.claims.measures import diverged, failed_to_train
from gradatlas.analysis.claims.parts import Part, missing, share_difference_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above

STUDIES = ("clipping_mlp", "clipping_rnn")
# The share of bad outcomes without clipping minus with it lies above this in every study.
DIFFERENCE_BOUND = Threshold("DIFFERENCE_BOUND", 0.0, "share of bad outcomes, unclipped - clipped, that clipping must exceed", -0.5, 0.5)
THRESHOLDS = (DIFFERENCE_BOUND,)


def _bad_outcome_part(name: str, runs: pd.DataFrame, th: ThresholdValues, decisive: bool = True) -> Part:
    """Share of runs that diverged or failed to train, unclipped - clipped (Newcombe)."""
    none, clipped = runs[runs["clip"] == "none"], runs[runs["clip"] != "none"]
    if none.empty or clipped.empty:
        return missing(name, "needs runs with and without clipping", decisive)

    def counts(frame: pd.DataFrame) -> tuple[int, int]:
        return int(diverged(frame).sum()), int(failed_to_train(frame).sum())

    (d1, f1), (d2, f2) = counts(none), counts(clipped)
    note = (f"unclipped: {d1} diverged, {f1} failed to train of {len(none)}; "
            f"clipped: {d2} diverged, {f2} failed to train of {len(clipped)}")
    if d1 + f1 == 0:
        note += "; every unclipped run trained, nothing to prevent"
    return share_difference_part(name, d1 + f1, len(none), d2 + f2, len(clipped), above(th.DIFFERENCE_BOUND),
                                 note=note, decisive=decisive)


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per clipping study: the share that diverged or failed to train, unclipped - clipped."""
    parts = [_bad_outcome_part(f"{study}: share diverged or failed to train, unclipped - clipped", t.select(study), th)
             for study in STUDIES if t.has_study(study)]
    return parts or [missing("share diverged or failed to train, unclipped - clipped", "no clipping studies")]


CLAIM = Claim(
    8, "Clipping prevents divergence",
    "Gradient clipping prevents divergence where gradients explode (RNNs, large inits).",
    STUDIES,
    "per study: share of runs that diverged or failed to train, without minus with clipping",
    f"A run that did not diverge but failed to train (final training loss above its initial loss, or "
    f"test skill at chance) counts as failed; both counts are stated apart. Per study ({', '.join(STUDIES)}; "
    f"never pooled): supported if Newcombe's {intervals.CONFIDENCE:.0%} interval of the difference of the shares "
    f"lies above {DIFFERENCE_BOUND:g} in every study; contradicted if it lies below {DIFFERENCE_BOUND:g} in one; "
    f"inconclusive otherwise, in particular when every unclipped run trained.",
    compute, THRESHOLDS)

"""Claim 6: the symptoms of vanishing (early layers still, flat loss) and exploding (growing weights, NaN)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gradatlas.analysis.claims.catalog.weight_scale import LARGE_STD, SMALL_STD
from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import by_seed, diverged_note, mlp_runs
from gradatlas.analysis.claims.parts import Part, join_notes, missing, seed_part, share_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, below

SCALE_STUDY = "init_scale"
CLIPPING_STUDY = "clipping_mlp"
# Vanishing: a first-layer update ratio below UPDATE_VANISHED is "near-zero change" (contradicted
# above UPDATE_MOVES); a relative loss decrease below LOSS_FLAT is flat (contradicted above LOSS_MOVES).
UPDATE_VANISHED = Threshold("UPDATE_VANISHED", 1e-4, "first-layer update ratio below which the change is near zero", 1e-06, 0.01, log=True)
UPDATE_MOVES = Threshold("UPDATE_MOVES", 1e-2, "first-layer update ratio above which the first layer moves", 0.0001, 1.0, log=True)
LOSS_FLAT = Threshold("LOSS_FLAT", 0.05, "relative loss decrease below which the loss is flat", 0.005, 0.5, log=True)
LOSS_MOVES = Threshold("LOSS_MOVES", 0.25, "relative loss decrease above which the loss moves", 0.05, 0.9, log=True)
# Exploding: the weight norm grows by more than GROWTH_SUPPORT (contradicted below GROWTH_CONTRADICT),
# and more than DIVERGED_SHARE of the runs diverge.
GROWTH_SUPPORT = Threshold("GROWTH_SUPPORT", 1.5, "weight-norm growth above which weights grow fast", 1.05, 10.0, log=True)
GROWTH_CONTRADICT = Threshold("GROWTH_CONTRADICT", 1.0, "weight-norm growth below which weights do not grow", 0.5, 1.5, log=True)
DIVERGED_SHARE = Threshold("DIVERGED_SHARE", 0.5, "share of diverged runs above which runs diverge", 0.05, 0.95)
THRESHOLDS = (UPDATE_VANISHED, UPDATE_MOVES, LOSS_FLAT, LOSS_MOVES, GROWTH_SUPPORT, GROWTH_CONTRADICT, DIVERGED_SHARE,)


def _weight_growth(t: Tables, runs: pd.DataFrame) -> tuple[list[float], str]:
    """Per run: weight norm at the last probe over step 0; a note on the runs it cannot measure."""
    growth, early, overflow = [], 0, 0
    for r in runs["run"]:
        step = t.last_step(r)
        before = t.profile(r, "weight_norm", 0)
        if not step:  # the run never reached a second probe (diverged at once): no growth to measure
            early += 1
            growth.append(math.nan)
            continue
        after = float(t.profile(r, "weight_norm", step).sum())
        if not np.isfinite(after):
            overflow += 1
            growth.append(math.nan)
            continue
        growth.append(after / float(before.sum()) if len(before) else math.nan)
    notes = []
    if early:
        notes.append(f"{early} run(s) without a probe after step 0 (diverged before it): growth not measurable")
    if overflow:
        notes.append(f"{overflow} run(s) with overflowed (non-finite) weights at the last probe")
    return growth, join_notes(*notes)


def _first_layer_updates(t: Tables, cell: pd.DataFrame) -> tuple[list[float], str]:
    """Per run: the first hidden layer's update ratio, mean over probes; a note on exact zeros."""
    first, zero_probes, probes = [], 0, 0
    for r in cell["run"]:
        part = t.layers_of(r)
        mask = part.hidden & (part.quantity == "update_ratio")
        if mask.any():  # the first hidden layer's update ratio at every probe
            values = part.value[mask & (part.layer == part.layer[mask].min())]
            values = values[np.isfinite(values)]
            zero_probes += int((values == 0.0).sum())
            probes += len(values)
            first.append(float(values.mean()) if len(values) else math.nan)
        else:
            first.append(math.nan)
    return first, f"{zero_probes} of {probes} probed first-layer update ratios exactly 0" if zero_probes else ""


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per activation: vanishing at the small std; exploding at the large std and without clipping."""
    scale = mlp_runs(t, SCALE_STUDY, init="normal", norm="none")
    small = scale[scale["init_std"] <= SMALL_STD]
    small = small[small["init_std"] == small["init_std"].max()] if not small.empty else small
    parts: list[Part] = []
    if small.empty:
        parts.append(missing(f"vanishing (std {SMALL_STD}): first-layer update ratio",
                             f"no {SCALE_STUDY} run with std <= {SMALL_STD}"))
    for act, cell in small.groupby("activation"):
        first, zeros = _first_layer_updates(t, cell)
        parts.append(seed_part(f"vanishing ({act}, std {SMALL_STD}): first-layer update ratio (mean over probes)",
                               by_seed(cell, first), below(th.UPDATE_VANISHED, th.UPDATE_MOVES), log=True, note=zeros))
        drop = (cell["first_loss"] - cell["final_train_loss"]) / cell["first_loss"]
        parts.append(seed_part(f"vanishing ({act}, std {SMALL_STD}): relative loss decrease", by_seed(cell, drop),
                               below(th.LOSS_FLAT, th.LOSS_MOVES), note=diverged_note(cell)))
    big = scale[scale["init_std"] >= LARGE_STD]
    big = big[big["init_std"] == big["init_std"].min()] if not big.empty else big
    exploding = {f"{SCALE_STUDY} std {LARGE_STD}": big,
                 f"{CLIPPING_STUDY} unclipped": mlp_runs(t, CLIPPING_STUDY, clip="none")}
    if all(frame.empty for frame in exploding.values()):
        parts.append(missing("exploding: weight growth and divergence",
                             f"no {SCALE_STUDY} std {LARGE_STD} or unclipped {CLIPPING_STUDY} runs"))
    for label, frame in exploding.items():
        for act, cell in frame.groupby("activation"):
            growth, note = _weight_growth(t, cell)
            parts.append(seed_part(f"exploding ({act}, {label}): weight-norm growth, last probe / init",
                                   by_seed(cell, growth), above(th.GROWTH_SUPPORT, th.GROWTH_CONTRADICT), log=True,
                                   note=note, absent="no run with a probe after step 0"))
            k = int((cell["status"] == "diverged").sum())
            parts.append(share_part(f"exploding ({act}, {label}): share of runs that diverge", k, len(cell),
                                    above(th.DIVERGED_SHARE)))
    return parts


CLAIM = Claim(
    6, "Symptoms of vanishing and exploding",
    "Symptoms: vanishing shows as near-zero change of the early layers and a flat loss; exploding "
    "shows as fast-growing weights, oscillating loss, then NaN.",
    (SCALE_STUDY, CLIPPING_STUDY),
    f"per activation: first-layer update ratio and relative loss decrease at std {SMALL_STD}; weight-norm "
    f"growth and share of diverged runs at std {LARGE_STD} and in unclipped {CLIPPING_STUDY}",
    rule_text(f"Every part is per activation (and per study for exploding): cells are never pooled. "
              f"Vanishing ({SCALE_STUDY}, std {SMALL_STD}): the interval of the first-layer update ratio (float64, "
              f"mean over probed steps; exact zeros counted apart) lies below {UPDATE_VANISHED:g} and that of the "
              f"relative loss decrease (first - final) / first below {LOSS_FLAT:g} (contradicted above "
              f"{UPDATE_MOVES:g} resp. {LOSS_MOVES:g}). Exploding ({SCALE_STUDY} std {LARGE_STD}; {CLIPPING_STUDY} "
              f"unclipped): the interval of the weight-norm growth (last probed step / step 0; runs never probed "
              f"after step 0 are counted, not measured) lies above {GROWTH_SUPPORT:g} (contradicted below "
              f"{GROWTH_CONTRADICT:g}) and the Wilson interval of the share of diverged runs lies above "
              f"{DIVERGED_SHARE:g} (contradicted below {DIVERGED_SHARE:g}). Oscillation of the loss needs the step "
              f"tables and is not tested."),
    compute, THRESHOLDS)

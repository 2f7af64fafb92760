"""Claim 7: batch norm lessens vanishing in sigmoid/tanh nets, but not in very deep sigmoid nets."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from gradatlas.analysis import intervals
from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import CAP_DECADES, by_seed, deepest, first_last_ratio, mlp_runs, paired
from gradatlas.analysis.claims.parts import Part, join_notes, missing, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, below, reported

STUDY = "normalization"
ACTIVATIONS = ("sigmoid", "tanh")
# Batch norm brings |log10(first / last backprop norm)| closer to 0 (a preserved gradient) than
# none by more than GAIN_BOUND decades in every cell; the deepest sigmoid net with batch norm still decays: below DEEP_SUPPORT decades
# (contradicted above DEEP_CONTRADICT).
GAIN_BOUND = Threshold("GAIN_BOUND", 0.0, "decades by which batch norm must bring |log10 first/last| closer to 0 than none", -1.0, 1.0)
DEEP_SUPPORT = Threshold("DEEP_SUPPORT", -1.0, "decades of first/last decay below which the deep sigmoid + batch norm net still vanishes", -5.0, 0.0)
DEEP_CONTRADICT = Threshold("DEEP_CONTRADICT", -0.5, "decades above which the deep sigmoid + batch norm net no longer vanishes", -5.0, 0.5)
THRESHOLDS = (GAIN_BOUND, DEEP_SUPPORT, DEEP_CONTRADICT,)


def _kept_decay(t: Tables, run: str) -> tuple[float, int]:
    """log10 first/last hidden backprop norm at step 0 over the layers not flagged by ``underflow``,
    and how many were flagged."""
    part, count = t.fit_layers(run, 0)
    return first_last_ratio(part.profile("backprop_norm", 0)), count


def _capped_note(values: Iterable[float]) -> str:
    """How many log10 ratios sit at the cap (a norm of exactly 0), said rather than hidden."""
    k = int(np.sum(np.abs(intervals.finite(values)) >= CAP_DECADES))
    return f"{k} run(s) with a norm of exactly 0, counted as {CAP_DECADES:g} decades" if k else ""


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per cell (activation, depth): |log10 first/last|, none - batch; the deepest sigmoid + batch norm decay."""
    runs = mlp_runs(t, STUDY, activation=list(ACTIVATIONS))
    parts: list[Part] = []
    layer_parts: list[Part] = []
    decay = {r: _kept_decay(t, r) for r in runs["run"]}
    flagged = sum(count for _, count in decay.values())
    underflow = join_notes(f"{flagged} underflowing layer(s) left out of the study" if flagged else "",
                           _capped_note(v for v, _ in decay.values()))
    for (act, depth), cell in runs.groupby(["activation", "depth"]):
        # |log10 first/last|: 0 is a preserved gradient; growth toward the input counts as much
        # against preservation as decay (batch norm's own explosion is claim 20's).
        spans = {norm: by_seed(sub, [abs(decay[r][0]) for r in sub["run"]]) for norm, sub in cell.groupby("norm")}
        if "none" in spans and "batch" in spans:
            parts.append(seed_part(f"{act}, depth {depth:g}: |log10 first/last backprop norm|, none - batch",
                                   paired(spans["none"], spans["batch"]), above(th.GAIN_BOUND), note=underflow))
        if "none" in spans and "layer" in spans:
            layer_parts.append(seed_part(f"{act}, depth {depth:g}: |log10 first/last|, none - layer norm",
                                         paired(spans["none"], spans["layer"]), reported, decisive=False))
    if not parts:
        parts.append(missing("|log10 first/last backprop norm|, none - batch", "needs norm none and batch"))
    deep = deepest(runs[(runs["activation"] == "sigmoid") & (runs["norm"] == "batch")])
    ratio_deep = by_seed(deep, [decay[r][0] for r in deep["run"]]) if not deep.empty else []
    depth = f" (depth {int(deep['depth'].iloc[0])})" if not deep.empty else ""
    parts.append(seed_part(f"sigmoid + batch norm, deepest: log10 first/last backprop norm{depth}", ratio_deep,
                           below(th.DEEP_SUPPORT, th.DEEP_CONTRADICT), absent="no sigmoid + batch norm runs"))
    return parts + layer_parts


CLAIM = Claim(
    7, "Batch norm lessens vanishing, not in very deep sigmoid nets",
    "Batch normalization lessens vanishing in sigmoid/tanh networks but does not remove it in very "
    "deep sigmoid networks.",
    (STUDY,),
    "per cell (activation, depth): |log10(first / last hidden backprop norm)| at initialization, none minus "
    "batch norm (how much closer to a preserved gradient); deepest sigmoid + batch norm ratio",
    rule_text(f"Each cell (activation in {{{', '.join(ACTIVATIONS)}}}, depth) is its own part, never pooled: "
              f"the span |log10(first / last hidden backprop norm)| at step 0 is 0 for a preserved gradient and "
              f"counts growth toward the input (batch norm's explosion, claim 20) as much as decay. Supported if "
              f"the interval of the span without minus with batch norm (paired by seed) lies above {GAIN_BOUND:g} in "
              f"every cell "
              f"and, for the deepest sigmoid net with batch norm, the interval of log10(first / last backprop "
              f"norm) lies below {DEEP_SUPPORT:g}; contradicted if a cell's difference lies below {GAIN_BOUND:g} or "
              f"the deep sigmoid ratio's interval lies above {DEEP_CONTRADICT:g}."),
    compute, THRESHOLDS)

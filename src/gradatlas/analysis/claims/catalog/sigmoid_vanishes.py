"""Claim 1: sigmoid gradients vanish geometrically with depth, and the first layers barely move."""

from __future__ import annotations

import math

from gradatlas.analysis import theory
from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import by_seed, deepest, first_last_ratio, layer_factors, mlp_runs
from gradatlas.analysis.claims.parts import Part, missing, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import below, reported

STUDY = "depth_activation_init"
# The per-layer factor vanishes below 1 (and grows above it).
FACTOR_BOUND = Threshold("FACTOR_BOUND", 1.0, "per-layer factor between shrinking and growing", 0.5, 2.0, log=True)
# The first hidden layer's update ratio over the last's: "barely changes" below UPDATE_SUPPORT,
# contradicted above UPDATE_CONTRADICT.
UPDATE_SUPPORT = Threshold("UPDATE_SUPPORT", 0.1, "first/last update ratio below which the first layers barely change", 0.01, 1.0, log=True)
UPDATE_CONTRADICT = Threshold("UPDATE_CONTRADICT", 0.5, "first/last update ratio above which the first layers do change", 0.05, 2.0, log=True)
THRESHOLDS = (FACTOR_BOUND, UPDATE_SUPPORT, UPDATE_CONTRADICT,)


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """The deepest sigmoid/default net's per-layer factor and first/last update ratio."""
    runs = deepest(mlp_runs(t, STUDY, activation="sigmoid", init="default", norm="none"))
    if runs.empty:
        return [missing("per-layer factor, sigmoid/default, deepest depth", "no sigmoid/default runs")]
    depth = int(runs["depth"].iloc[0])
    factors, flagged = layer_factors(t, runs)
    updates, undefined, endpoints, fits = [], 0, [], []
    for r in runs["run"]:
        ur = t.profile(r, "update_ratio", step=None)
        last = float(ur.iloc[-1]) if len(ur) >= 2 else math.nan
        if last > 0:
            updates.append(float(ur.iloc[0]) / last)
        else:  # no update of the last layer: the ratio is undefined (counted, not guessed)
            undefined += int(last == 0.0)
            updates.append(math.nan)
        endpoints.append(first_last_ratio(t.profile(r, "backprop_norm")))
        fit_layers, _ = t.fit_layers(r)
        fits.append(theory.factor_fit(fit_layers)["r2"] if len(fit_layers) else math.nan)
    zero_note = f"{undefined} run(s) whose last layer did not move left out" if undefined else ""
    return [
        seed_part(f"per-layer factor (depth {depth})", factors, below(th.FACTOR_BOUND), log=True, note=flagged),
        seed_part("update ratio first / last hidden layer (mean over probes)", by_seed(runs, updates),
                  below(th.UPDATE_SUPPORT, th.UPDATE_CONTRADICT), log=True, note=zero_note),
        seed_part("log10 backprop norm first/last hidden layer", by_seed(runs, endpoints), reported, decisive=False),
        seed_part("R^2 of the log-linear fit", by_seed(runs, fits), reported, decisive=False),
    ]


CLAIM = Claim(
    1, "Sigmoid gradients vanish with depth",
    "Sigmoid: the backpropagated gradient shrinks geometrically with depth (sigmoid' <= 1/4); "
    "the first layers barely change during training.",
    (STUDY,),
    "per-layer factor of the backprop norm at initialization (sigmoid, default init, deepest net)",
    rule_text(f"Supported if the CI of the per-layer factor lies below {FACTOR_BOUND:g} and the CI of the first "
              f"over the last hidden layer's update ratio (float64, mean over probed steps; exact zeros counted) "
              f"lies below {UPDATE_SUPPORT:g}; contradicted if the factor's CI lies above {FACTOR_BOUND:g} or the "
              f"update-ratio CI lies above {UPDATE_CONTRADICT:g}."),
    compute, THRESHOLDS)

"""Claim 6: the symptoms of vanishing (early layers still, flat loss) and exploding (growing weights, NaN)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from gradatlas.analysis import theory
from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import by_seed, diverged_note, mlp_runs
from gradatlas.analysis.claims.parts import Part, missing, seed_part, share_part
from gradatlas.analysis.claims.summary import Tables, per_tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, below

SCALE_STUDY = "init_scale"
EXPLODING_STUDY = "exploding"
# The weight stds of init_scale that explode (at least LARGE_STD) and vanish (at most SMALL_STD);
# the nearest to each bound is used.
LARGE_STD = 1.0
SMALL_STD = 0.01
# Activations whose output is bounded: their forward pass cannot overflow, so an exploding
# gradient need not end in NaN.
BOUNDED = frozenset({"tanh", "sigmoid", "hardtanh", "softsign"})
# Vanishing: a first-layer update ratio below UPDATE_VANISHED is "near-zero change" (contradicted
# above UPDATE_MOVES); a relative loss decrease below LOSS_FLAT is flat (contradicted above LOSS_MOVES).
UPDATE_VANISHED = Threshold("UPDATE_VANISHED", 1e-4, "first-layer update ratio below which the change is near zero", 1e-06, 0.01, log=True)
UPDATE_MOVES = Threshold("UPDATE_MOVES", 1e-2, "first-layer update ratio above which the first layer moves", 0.0001, 1.0, log=True)
LOSS_FLAT = Threshold("LOSS_FLAT", 0.05, "relative loss decrease below which the loss is flat", 0.005, 0.5, log=True)
LOSS_MOVES = Threshold("LOSS_MOVES", 0.25, "relative loss decrease above which the loss moves", 0.05, 0.9, log=True)
# Exploding, decided only in cells where mean-field theory predicts the gradient norm to grow by
# more than REGIME_GROWTH across the hidden layers (others are reported): the weight norm grows by
# more than GROWTH_SUPPORT (contradicted below GROWTH_CONTRADICT), the gradient norm by more than
# GRAD_GROWTH_SUPPORT (contradicted below GRAD_GROWTH_CONTRADICT), and more than DIVERGED_SHARE of
# the runs diverge (unbounded activations) or fewer do (bounded ones).
REGIME_GROWTH = Threshold("REGIME_GROWTH", 10.0, "predicted gradient growth across the hidden layers above which a "
                          "cell is in the exploding regime", 2.0, 100.0, log=True)
GROWTH_SUPPORT = Threshold("GROWTH_SUPPORT", 1.5, "weight-norm growth above which weights grow fast", 1.05, 10.0, log=True)
GROWTH_CONTRADICT = Threshold("GROWTH_CONTRADICT", 1.0, "weight-norm growth below which weights do not grow", 0.5, 1.5, log=True)
GRAD_GROWTH_SUPPORT = Threshold("GRAD_GROWTH_SUPPORT", 2.0, "gradient-norm growth above which the gradient grows",
                                1.2, 100.0, log=True)
GRAD_GROWTH_CONTRADICT = Threshold("GRAD_GROWTH_CONTRADICT", 1.2, "gradient-norm growth below which the gradient "
                                   "does not grow", 1.0, 2.0, log=True)
DIVERGED_SHARE = Threshold("DIVERGED_SHARE", 0.5, "share of diverged runs above which runs diverge", 0.05, 0.95)
THRESHOLDS = (UPDATE_VANISHED, UPDATE_MOVES, LOSS_FLAT, LOSS_MOVES, REGIME_GROWTH, GROWTH_SUPPORT, GROWTH_CONTRADICT,
              GRAD_GROWTH_SUPPORT, GRAD_GROWTH_CONTRADICT, DIVERGED_SHARE)


@per_tables
def _finite_probes(t: Tables, run: str) -> tuple[int, ...]:
    """The probed steps of a run, in order, up to its last one with finite weights and gradients."""
    part = t.layers_of(run)
    keep = part.hidden & np.isin(part.quantity, ["weight_norm", "weight_grad_norm"])
    steps = []
    for step in np.unique(part.step[keep]):
        values = part.value[keep & (part.step == step)]
        if not np.all(np.isfinite(values)):
            break
        steps.append(int(step))
    return tuple(steps)


@per_tables
def _run_growth(t: Tables, run: str, quantity: str) -> tuple[float, bool]:
    """The largest ``quantity`` of a run (summed over hidden layers in quadrature) over the
    probes up to the last finite one, over its value at step 0; and whether the run has no
    finite probe after step 0 (then NaN)."""
    steps = _finite_probes(t, run)
    if len(steps) < 2 or steps[0] != 0:
        return math.nan, True
    totals = [float(np.sqrt(np.sum(t.profile(run, quantity, step).to_numpy(float) ** 2))) for step in steps]
    return (max(totals[1:]) / totals[0] if totals[0] > 0 else math.nan), False


def _growth(t: Tables, runs: pd.DataFrame, quantity: str) -> tuple[list[float], str]:
    """Per run: ``_run_growth``; a note on the runs without a finite probe after step 0
    (diverged before it: not measurable)."""
    found = [_run_growth(t, r, quantity) for r in runs["run"]]
    early = sum(flag for _, flag in found)
    note = f"{early} run(s) without a finite probe after step 0 (diverged before it): not measurable" if early else ""
    return [value for value, _ in found], note


def _regime(run: pd.Series) -> float:
    """The mean-field growth of the backpropagated gradient norm across the hidden layers,
    chi_1 ** ((depth - 1) / 2), at the cell's sigma_w^2 (NaN where the theory has no answer)."""
    # Missing factors as None: NaN keys never hit the cache (NaN != NaN).
    init_std, bias = (None if theory.is_missing(v) else v for v in (run.get("init_std"), run.get("bias")))
    return _predicted_growth(str(run["activation"]), str(run["init"]), run["width"], run["gain"], init_std, bias,
                             float(run["depth"]))


@functools.lru_cache(maxsize=None)  # a fixed-point solve per call; the sensitivity sweep asks ~200 times per cell
def _predicted_growth(activation: str, init: str, width, gain, init_std, bias, depth: float) -> float:
    sigma_b2 = theory.bias_variance(init, width, bias)
    if sigma_b2 is None:
        return math.nan
    sigma_w2 = theory.weight_variance(init, width, gain, init_std)
    chi = theory.chi1(activation, sigma_w2, sigma_b2)
    return float(chi ** ((depth - 1) / 2)) if math.isfinite(chi) else math.nan


@per_tables
def _first_layer_update(t: Tables, run: str) -> tuple[float, int, int]:
    """A run's first hidden layer's update ratio, mean over its finite probes; how many of them
    are exactly 0, and how many there are."""
    part = t.layers_of(run)
    mask = part.hidden & (part.quantity == "update_ratio")
    if not mask.any():
        return math.nan, 0, 0
    values = part.value[mask & (part.layer == part.layer[mask].min())]  # the first hidden layer, every probe
    values = values[np.isfinite(values)]
    return (float(values.mean()) if len(values) else math.nan), int((values == 0.0).sum()), len(values)


def _first_layer_updates(t: Tables, cell: pd.DataFrame) -> tuple[list[float], str]:
    """Per run: the first hidden layer's update ratio, mean over probes; a note on exact zeros."""
    found = [_first_layer_update(t, r) for r in cell["run"]]
    zero_probes, probes = sum(f[1] for f in found), sum(f[2] for f in found)
    return [f[0] for f in found], f"{zero_probes} of {probes} probed first-layer update ratios exactly 0" if zero_probes else ""


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per activation: vanishing at the small std; per cell in the exploding regime, its symptoms."""
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
    exploding = pd.concat([big, mlp_runs(t, EXPLODING_STUDY, norm="none")])
    if exploding.empty:
        parts.append(missing("exploding: divergence, weight growth and gradient growth",
                             f"no {SCALE_STUDY} std {LARGE_STD} or {EXPLODING_STUDY} runs"))
    for (study, act, std), cell in exploding.groupby(["study", "activation", "init_std"], sort=True):
        growth = _regime(cell.iloc[0])
        inside = growth > th.REGIME_GROWTH
        where = (f"{act}, {study} std {std:g}, predicted growth {growth:.3g}x"
                 + ("" if inside else f"; outside the exploding regime, at most {th.REGIME_GROWTH:g}x: reported"))
        k = int((cell["status"] == "diverged").sum())
        if act in BOUNDED:
            parts.append(share_part(f"exploding ({where}): bounded activation, share of runs that diverge", k,
                                    len(cell), below(th.DIVERGED_SHARE), decisive=inside))
        else:
            parts.append(share_part(f"exploding ({where}): share of runs that diverge", k, len(cell),
                                    above(th.DIVERGED_SHARE), decisive=inside))
        weights, note = _growth(t, cell, "weight_norm")
        parts.append(seed_part(f"exploding ({where}): weight-norm growth, largest finite probe / init",
                               by_seed(cell, weights), above(th.GROWTH_SUPPORT, th.GROWTH_CONTRADICT), log=True,
                               note=note, decisive=inside, absent="no run with a finite probe after step 0"))
        grads, note = _growth(t, cell, "weight_grad_norm")
        parts.append(seed_part(f"exploding ({where}): gradient-norm growth, largest finite probe / init",
                               by_seed(cell, grads), above(th.GRAD_GROWTH_SUPPORT, th.GRAD_GROWTH_CONTRADICT),
                               log=True, note=note, decisive=inside, absent="no run with a finite probe after step 0"))
    return parts


CLAIM = Claim(
    6, "Symptoms of vanishing and exploding",
    "Symptoms: vanishing shows as near-zero change of the early layers and a flat loss; exploding "
    "shows as fast-growing weights, oscillating loss, then NaN.",
    (SCALE_STUDY, EXPLODING_STUDY),
    f"per activation: first-layer update ratio and relative loss decrease at std {SMALL_STD}; per cell in the "
    f"exploding regime: share of diverged runs, weight-norm and gradient-norm growth",
    rule_text(f"Every part is per cell: cells are never pooled. "
              f"Vanishing ({SCALE_STUDY}, std {SMALL_STD}): the interval of the first-layer update ratio (float64, "
              f"mean over probed steps; exact zeros counted apart) lies below {UPDATE_VANISHED:g} and that of the "
              f"relative loss decrease (first - final) / first below {LOSS_FLAT:g} (contradicted above "
              f"{UPDATE_MOVES:g} resp. {LOSS_MOVES:g}). Exploding ({SCALE_STUDY} std {LARGE_STD} and every cell of "
              f"{EXPLODING_STUDY}, probed at every one of the first 32 steps): a cell votes only where mean-field "
              f"theory puts it in the exploding regime, chi_1^((L-1)/2) > {REGIME_GROWTH:g} at its sigma_w^2 and "
              f"activation; the others are reported. Per voting cell: the Wilson interval of the share of diverged "
              f"runs lies above {DIVERGED_SHARE:g} for unbounded activations and below it for bounded ones "
              f"({', '.join(sorted(BOUNDED))}: the forward pass cannot overflow; contradicted on the other side); "
              f"the interval of the weight-norm growth (largest over the probes up to the last finite one / step 0; "
              f"runs without a finite probe after step 0 are counted, not measured) lies above "
              f"{GROWTH_SUPPORT:g} (contradicted below {GROWTH_CONTRADICT:g}); that of the gradient-norm growth "
              f"(the weight gradients, the same way) above {GRAD_GROWTH_SUPPORT:g} (contradicted below "
              f"{GRAD_GROWTH_CONTRADICT:g}). Oscillation of the loss needs the step tables and is not tested."),
    compute, THRESHOLDS, replicas=("digits",))

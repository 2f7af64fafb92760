"""Claim 22: saturation during training (Glorot and Bengio 2010), each statement its own part.

Glorot and Bengio (section 3, figures 2, 3 and 7) make four statements about MLPs of five hidden
layers with the standard initialization U(-1/sqrt(n), 1/sqrt(n)) (PyTorch's default): with
sigmoid units the top hidden layer is pushed to its lower saturation value 0 very early in
training and, at depth five, does not escape it, while the lower layers' mean activation lies
above 0.5 and falls from the top toward the input; with tanh units the layers saturate one
after another, starting from the first; and their normalized initialization keeps the
back-propagated gradient's variance about level across layers, where the standard one lets it
shrink toward the input. Every statement is measured on the study's dense early probe
schedule, and the mean field's saturated share at initialization is checked in every cell.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import by_seed, layer_factors
from gradatlas.analysis.claims.parts import Part, fmt, join_notes, missing, seed_part
from gradatlas.analysis.claims.summary import Tables, per_tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, below, reported, within
from gradatlas.analysis.theory.fits import LayerArrays, example_values
from gradatlas.analysis.theory.iterated import iterated_factor
from gradatlas.analysis.theory.saturation import saturated_share
from gradatlas.analysis.theory.table import DATA_SHAPES, INPUT_NORMS
from gradatlas.analysis.theory.variances import bias_variance, weight_variance
from gradatlas.run import inits
from gradatlas.run.config import ProbeConfig

STUDY = "saturation"
STANDARD, NORMALIZED = "default", "xavier_uniform"
# The probe's relative slope threshold (probe.saturation; the study keeps the default).
PROBE_SATURATION = ProbeConfig.saturation

TOP_SATURATED = Threshold("TOP_SATURATED", 0.1, "mean activation of a sigmoid layer below which it counts as "
                          "saturated at 0 (at init it is 0.5)", 0.03, 0.25, log=True)
EARLY_SHARE = Threshold("EARLY_SHARE", 0.25, "share of the training steps within which saturation counts as early",
                        0.1, 0.5)
ORDER_RHO = Threshold("ORDER_RHO", 0.5, "Spearman correlation of layer index and the ordered quantity above which "
                      "the layers are in that order", 0.2, 0.9)
ONSET_SHARE = Threshold("ONSET_SHARE", 0.2, "saturated share of a tanh layer that marks the onset of its saturation",
                        0.05, 0.5, log=True)
LEVEL_TOL = Threshold("LEVEL_TOL", 0.1, "largest distance of the per-layer factor of the back-propagated norm from 1 "
                      "that counts as level", 0.03, 0.3, log=True)
SHARE_TOL = Threshold("SHARE_TOL", 0.02, "largest absolute distance of a layer's measured saturated share at step 0 "
                      "from the mean field's (sampling error of 32 x 64 pairs: about 0.004)", 0.005, 0.1, log=True)
THRESHOLDS = (TOP_SATURATED, EARLY_SHARE, ORDER_RHO, ONSET_SHARE, LEVEL_TOL, SHARE_TOL)


def over_training(part: LayerArrays, quantity: str) -> pd.DataFrame:
    """``quantity`` of every hidden layer at every probed step: rows steps, columns layers."""
    mask = part.hidden & (part.quantity == quantity)
    frame = pd.DataFrame({"step": part.step[mask], "layer": part.layer[mask], "value": part.value[mask]})
    if frame.empty:
        return frame
    return frame.pivot_table(index="step", columns="layer", values="value", aggfunc="mean").sort_index()


@per_tables
def _over_training(t: Tables, run: str, quantity: str) -> pd.DataFrame:
    """``over_training`` of one run, once per summary (a threshold moves nothing in it)."""
    return over_training(t.layers_of(run), quantity)


def first_step_below(series: pd.Series, level: float) -> float:
    """The first step (index) where ``series`` is below ``level``; inf if it never is."""
    hits = series.index[series.to_numpy() < level]
    return float(hits[0]) if len(hits) else math.inf


def onset_steps(shares: pd.DataFrame, level: float, never: float) -> np.ndarray:
    """Per layer (column), the first step at which its saturated share reaches ``level``;
    ``never`` for a layer that does not within the run."""
    out = []
    for layer in shares.columns:
        hits = shares.index[shares[layer].to_numpy() >= level]
        out.append(float(hits[0]) if len(hits) else never)
    return np.asarray(out)


def layer_order(values: np.ndarray) -> float:
    """Spearman's correlation of the layer index with ``values`` (NaN when they are constant)."""
    if len(values) < 3 or np.ptp(values) == 0:
        return math.nan
    return float(spearmanr(np.arange(len(values)), values).statistic)


def _ok(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"] == "ok"] if "status" in runs else runs


def _per_seed(t: Tables, runs: pd.DataFrame, measure) -> pd.Series:
    """``measure(layer arrays, run row)`` of every run, indexed by seed."""
    return by_seed(runs, [measure(t.layers_of(row.run), row) for row in runs.itertuples(index=False)])


def top_layer_parts(t: Tables, runs: pd.DataFrame, th: ThresholdValues, decisive: bool, label: str) -> list[Part]:
    """Sigmoid: how early the top layer falls below TOP_SATURATED, whether it is still there at the
    end, and the lower layers' mean and order at the end."""
    # One pass per run: the act_mean pivot, read for the early step and the last probe's profile.
    early, top_end, lower_excess, lower_order = [], [], [], []
    for row in runs.itertuples(index=False):
        frame = _over_training(t, row.run, "act_mean")
        last = frame.iloc[-1] if len(frame) else pd.Series(dtype=float)
        early.append(min(first_step_below(frame[frame.columns.max()], th.TOP_SATURATED) / float(row.steps), 1.0)
                     if len(frame) else math.nan)
        top_end.append(float(last.iloc[-1]) if len(last) else math.nan)
        lower_excess.append(float(last.iloc[:-1].mean() - 0.5) if len(last) > 1 else math.nan)
        lower_order.append(layer_order(last.iloc[:-1].to_numpy()) if len(last) > 1 else math.nan)
    early, top_end, lower_excess, lower_order = (by_seed(runs, v) for v in (early, top_end, lower_excess, lower_order))
    return [
        seed_part(f"{label}: steps until the top hidden layer's mean activation falls below TOP_SATURATED, as a share "
                  f"of training", early, below(th.EARLY_SHARE), decisive=decisive,
                  note="1 = never within the run"),
        seed_part(f"{label}: the top hidden layer's mean activation at the last step (still saturated)", top_end,
                  below(th.TOP_SATURATED), log=True, decisive=decisive),
        seed_part(f"{label}: the lower layers' mean activation at the last step - 0.5", lower_excess, above(0.0),
                  decisive=decisive),
        seed_part(f"{label}: Spearman rho of layer index and mean activation of the lower layers at the last step "
                  f"(falling toward the input)", lower_order, above(th.ORDER_RHO), decisive=decisive),
    ]


def onset_part(t: Tables, runs: pd.DataFrame, th: ThresholdValues, decisive: bool, label: str) -> Part:
    """tanh: Spearman's rho of the layer index and the step its saturated share reaches
    ONSET_SHARE (layers that never do share the last rank)."""
    orders = [_onset_order(t, row.run, th.ONSET_SHARE, float(row.steps) + 1.0) for row in runs.itertuples(index=False)]
    return seed_part(f"{label}: Spearman rho of layer index and the step its saturated share reaches ONSET_SHARE "
                     f"(first layer first)", by_seed(runs, orders), above(th.ORDER_RHO), decisive=decisive,
                     note="a layer that never reaches it ranks last; a seed none of whose layers reaches it is "
                          "left out", absent="no layer reached ONSET_SHARE")


@per_tables
def _onset_order(t: Tables, run: str, level: float, never: float) -> float:
    """Spearman's rho of a run's layer index and the step its saturated share reaches ``level``."""
    shares = _over_training(t, run, "saturated_frac")
    if shares.empty:
        return math.nan
    return layer_order(onset_steps(shares, level, never))


def first_variances(row, norms: np.ndarray) -> np.ndarray:
    """Each recorded input's variance of the first pre-activation, std_1^2 ||x||^2 + sigma_b1^2."""
    features, width, init = DATA_SHAPES[str(row.data)][0], int(row.width), str(row.init)
    return inits.weight_std(init, features, width) ** 2 * norms + (bias_variance(init, features, None) or 0.0)


def predicted_shares(row, part: LayerArrays) -> np.ndarray:
    """The mean field's saturated share of each hidden layer at step 0 (``theory.saturation``),
    from the run's recorded input norms; empty where it has none."""
    norms = example_values(part, INPUT_NORMS)
    shape = DATA_SHAPES.get(str(row.data))
    if len(norms) == 0 or shape is None:
        return np.zeros(0)
    width, init = int(row.width), str(row.init)
    return saturated_share(str(row.activation), weight_variance(init, width), first_variances(row, norms),
                           int(row.depth), PROBE_SATURATION, bias_variance(init, width, None) or 0.0)


def share_error(part: LayerArrays, row) -> float:
    """The largest |measured - predicted| saturated share over the hidden layers at step 0."""
    predicted = predicted_shares(row, part)
    measured = part.profile("saturated_frac", 0)
    if len(predicted) == 0 or len(measured) != len(predicted):
        return math.nan
    return float(np.max(np.abs(measured.to_numpy() - predicted)))


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """The sigmoid top layer, the tanh order of saturation, the level back-propagated norm, and
    the mean-field saturated share at step 0 in every cell."""
    runs = _ok(t.select(STUDY))
    if runs.empty:
        return [missing("sigmoid, standard init: the top hidden layer saturates early", f"no {STUDY} runs")]
    parts: list[Part] = []
    sigmoid_std, sigmoid_norm = runs[(runs["activation"] == "sigmoid") & (runs["init"] == STANDARD)], \
        runs[(runs["activation"] == "sigmoid") & (runs["init"] == NORMALIZED)]
    tanh_std, tanh_norm = runs[(runs["activation"] == "tanh") & (runs["init"] == STANDARD)], \
        runs[(runs["activation"] == "tanh") & (runs["init"] == NORMALIZED)]
    if sigmoid_std.empty:
        parts.append(missing("sigmoid, standard init: the top hidden layer saturates early", "cells absent"))
    else:
        parts += top_layer_parts(t, sigmoid_std, th, True, "sigmoid, standard init")
    if len(sigmoid_norm):
        parts += top_layer_parts(t, sigmoid_norm, th, False, "sigmoid, normalized init")
    parts.append(onset_part(t, tanh_std, th, True, "tanh, standard init") if len(tanh_std)
                 else missing("tanh, standard init: layers saturate from the first", "cells absent"))
    if len(tanh_norm):
        parts.append(onset_part(t, tanh_norm, th, False, "tanh, normalized init"))
    for frame, label, offset, judge, decisive in (
            (tanh_norm, "tanh, normalized init: per-layer factor of the back-propagated norm at step 0 - 1", 1.0,
             within(th.LEVEL_TOL), True),
            (tanh_std, "tanh, standard init: per-layer factor of the back-propagated norm at step 0 (shrinks toward "
             "the input)", 0.0, below(1.0 - th.LEVEL_TOL), True),
            (sigmoid_norm, "sigmoid, normalized init: per-layer factor at step 0 (the derivation assumes "
             "phi'(0) = 1; sigmoid's is 1/4)", 0.0, reported, False)):
        if frame.empty:
            parts.append(missing(label, "cells absent", decisive))
            continue
        values, note = _offset_factors(t, str(frame["activation"].iloc[0]), str(frame["init"].iloc[0]), offset)
        parts.append(seed_part(label, values, judge, decisive=decisive, note=note))
    for cell in sorted(runs["cell"].unique()):
        errors, note = _share_errors(t, cell)
        parts.append(seed_part(f"{cell}: largest |measured - mean-field| saturated share over the layers at step 0",
                               errors, below(th.SHARE_TOL), note=note, absent="no input norms recorded"))
    return parts


def _cell_runs(t: Tables, **factors) -> pd.DataFrame:
    runs = _ok(t.select(STUDY))
    for name, value in factors.items():
        runs = runs[runs[name] == value]
    return runs


@per_tables
def _offset_factors(t: Tables, activation: str, init: str, offset: float) -> tuple[pd.Series, str]:
    """The per-layer factors at step 0 of the runs of one activation and init, less ``offset``,
    and their note (once per summary)."""
    frame = _cell_runs(t, activation=activation, init=init)
    factors, note = layer_factors(t, frame)
    values = factors - offset
    values.attrs.update(factors.attrs)
    return values, join_notes(_factor_note(t, frame), note)


@per_tables
def _share_errors(t: Tables, cell: str) -> tuple[pd.Series, str]:
    """Per seed of ``cell``, the largest |measured - mean-field| saturated share at step 0, and
    the first run's shares for the note (once per summary)."""
    frame = _cell_runs(t, cell=cell)
    return _per_seed(t, frame, share_error), _share_note(t, frame)


def _factor_note(t: Tables, frame: pd.DataFrame) -> str:
    """The mean field's per-layer factor for the first run's inputs, iterated through the depth
    (``theory.iterated_factor``: the fit a finite depth would see, not the fixed point's)."""
    row = next(frame.itertuples(index=False))
    norms = example_values(t.layers_of(row.run), INPUT_NORMS)
    shape = DATA_SHAPES.get(str(row.data))
    if len(norms) == 0 or shape is None:
        return ""
    width, init = int(row.width), str(row.init)
    sigma_w2, sigma_b2 = weight_variance(init, width), bias_variance(init, width, None) or 0.0
    q_first = first_variances(row, norms)
    # iterated_factor starts at q_0 = sigma_w^2 m + sigma_b^2: the m that gives each example's q_0.
    predicted = iterated_factor(str(row.activation), sigma_w2, sigma_b2, (q_first - sigma_b2) / sigma_w2,
                                int(row.depth))
    return f"mean field iterated from the inputs: {fmt(predicted)}"


def _share_note(t: Tables, frame: pd.DataFrame) -> str:
    """The first run's measured and predicted shares per layer, for the table's reader."""
    row = next(frame.itertuples(index=False))
    part = t.layers_of(row.run)
    predicted = predicted_shares(row, part)
    measured = part.profile("saturated_frac", 0)
    if len(predicted) == 0 or len(measured) != len(predicted):
        return ""
    return "seed " + str(row.seed) + ": " + ", ".join(f"layer {i}: {fmt(m)} vs {fmt(p)}" for i, (m, p)
                                                     in enumerate(zip(measured.to_numpy(), predicted)))


CLAIM = Claim(
    22, "Saturation during training",
    "In MLPs of five hidden layers with the standard initialization U(-1/sqrt(n), 1/sqrt(n)), the top hidden "
    "layer of a sigmoid net saturates at 0 early in training and stays there, while the lower layers' mean "
    "activation lies above 0.5 and falls toward the input; the layers of a tanh net saturate one after another, "
    "starting from the first; the normalized initialization keeps the back-propagated gradient level across "
    "layers, where the standard one lets it shrink toward the input (Glorot and Bengio 2010). At step 0 the mean "
    "field predicts each layer's saturated share.",
    (STUDY,),
    "sigmoid top layer: saturation step share and final mean; tanh: order of saturation onsets; per-layer factors "
    "at step 0; mean-field saturated share per cell",
    rule_text(f"Over the seeds of {STUDY} (runs that diverged left out). Sigmoid, standard init: the first step at "
              f"which the top hidden layer's act_mean falls below {TOP_SATURATED:g}, over the run's steps, must lie "
              f"below {EARLY_SHARE:g}; its act_mean at the last probe below {TOP_SATURATED:g} (log scale); the "
              f"lower layers' mean act_mean at the last probe above 0.5, and Spearman's rho of layer index and "
              f"their act_mean above {ORDER_RHO:g}. tanh, standard init: Spearman's rho of the layer index and the "
              f"first step at which the layer's saturated_frac (|phi'| < {PROBE_SATURATION:g} sup|phi'|) reaches "
              f"{ONSET_SHARE:g} above {ORDER_RHO:g}. tanh at step 0: the per-layer factor of the back-propagated "
              f"norm within {LEVEL_TOL:g} of 1 with the normalized init, below 1 - {LEVEL_TOL:g} with the standard "
              f"one. Every cell: the largest |measured - predicted| saturated share over the layers at step 0, the "
              f"prediction the length map iterated from each recorded input's variance, below {SHARE_TOL:g}. Each "
              f"contradicted when its interval lies on the other side; the normalized init's sigmoid parts and "
              f"its tanh order are reported."),
    compute, THRESHOLDS)

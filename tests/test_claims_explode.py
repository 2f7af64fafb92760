"""Claims 6, 7, 8 and 19 on synthetic tables where each sub-claim holds and where it is false."""

from __future__ import annotations

import numpy as np
import pytest

from gradatlas.analysis import theory
from gradatlas.analysis.claims import CONTRADICTED, MIXED, SUPPORTED

NOT_SUPPORTED = (CONTRADICTED, MIXED)  # a contradicted sub-claim beside supported ones gives mixed
from test_claims import Builder, evaluate

pytestmark = pytest.mark.unit

RNN = dict(model="rnn", activation="tanh", init="orthogonal", width=64.0, depth=1.0, data="adding", length=20.0,
           metric="mse", chance=1 / 6, lr=0.05)
GAINS = (0.8, 0.9, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3)


def _rnn_gain_tables(factor_of_gain, seeds: int = 5, clips=("none",), **statuses) -> Builder:
    b = Builder()
    for seed in range(seeds):
        for gain in GAINS:
            for clip in clips:
                run = b.run("clipping_rnn", seed, gain=gain, clip=clip, **RNN, **statuses.get(clip, {}))
                f = factor_of_gain(gain) * (1 + 0.002 * (seed - 2))
                b.series(run, "hidden_grad_norm", [f ** (20 - t) for t in range(1, 21)])
    return b


def _mean_field(gain: float) -> float:
    return theory.rnn_factor_of_gain("tanh", "orthogonal", 64, "adding", 20)(gain)


def test_claim19_supported_where_the_rnn_follows_the_mean_field():
    result = evaluate(_rnn_gain_tables(_mean_field), 19)
    parts = {p.name.split(":")[0]: p for p in result.parts}
    crossing = next(p for p in result.parts if p.name.startswith("crossing"))
    assert abs(crossing.value) < 0.01 and crossing.verdict == SUPPORTED
    assert parts["g = 1 <= 1"].verdict == SUPPORTED and parts["g = 1.3 > 1, above the crossing"].verdict == SUPPORTED
    assert result.verdict == SUPPORTED


def test_claim19_contradicted_when_the_crossing_is_at_one():
    # The factor equals g (no drive, no saturation): it crosses 1 at g = 1, not above it.
    result = evaluate(_rnn_gain_tables(lambda g: g), 19)
    crossing = next(p for p in result.parts if p.name.startswith("crossing"))
    assert crossing.value == pytest.approx(1.0 - theory.crossing_gain(lambda g: _mean_field(g)), abs=0.005)
    assert crossing.verdict == CONTRADICTED and result.verdict in NOT_SUPPORTED


def test_claim19_contradicted_when_a_gain_at_most_one_grows():
    result = evaluate(_rnn_gain_tables(lambda g: _mean_field(g) * (1.1 if g <= 1.0 else 1.0)), 19)
    grows = next(p for p in result.parts if p.name.startswith("g = 1 <= 1"))
    assert grows.value > 1 and grows.verdict == CONTRADICTED


def test_claim19_contradicted_when_no_gain_explodes():
    result = evaluate(_rnn_gain_tables(lambda g: min(_mean_field(g), 0.99) if g > 1.1 else _mean_field(g)), 19)
    high = next(p for p in result.parts if p.name.startswith("g = 1.3 > 1"))
    assert high.verdict == CONTRADICTED and result.verdict in NOT_SUPPORTED


# ------------------------------------------------------------------------------ claim 6

MLP = dict(model="mlp", init="normal", width=64.0, depth=20.0, gain=1.0, norm="none")


def _exploding_cell(b: Builder, act: str, std: float, *, diverged: bool, weights: float, grads: float,
                    seeds: int = 10) -> None:
    for seed in range(seeds):
        run = b.run("exploding", seed, activation=act, init_std=std, status="diverged" if diverged else "ok",
                    test_metric=np.nan if diverged else 0.3, **MLP)
        spread = 1 + 0.02 * seed
        for step, scale in ((0, 1.0), (1, spread)):
            b.layer(run, "weight_norm", [1.0 + (weights - 1) * scale * step] * 3, step=step)
            b.layer(run, "weight_grad_norm", [1.0 + (grads - 1) * scale * step] * 3, step=step)
        if diverged:  # the probe after divergence holds non-finite weights: never the growth
            b.layer(run, "weight_norm", [np.inf] * 3, step=2)
            b.layer(run, "weight_grad_norm", [np.nan] * 3, step=2)


def _parts(result, act: str, std: float) -> dict:
    return {p.name.split("): ")[1]: p for p in result.parts if p.name.startswith(f"exploding ({act}, exploding std {std:g}")}


def test_claim6_exploding_symptoms_decided_only_in_the_exploding_regime():
    b = Builder()
    _exploding_cell(b, "relu", 0.2165, diverged=True, weights=1.5, grads=1e8)   # chi_1 = 1.5: 47x over 19 layers
    _exploding_cell(b, "tanh", 0.5, diverged=False, weights=2.5, grads=3.0)     # chi_1 = 2.38
    _exploding_cell(b, "relu", 0.19, diverged=False, weights=1.0, grads=1.0)    # chi_1 = 1.16: 4x, outside
    result = evaluate(b, 6)
    relu, tanh, outside = _parts(result, "relu", 0.2165), _parts(result, "tanh", 0.5), _parts(result, "relu", 0.19)
    assert relu["share of runs that diverge"].verdict == SUPPORTED
    assert relu["weight-norm growth, largest finite probe / init"].value == pytest.approx(
        np.exp(np.mean(np.log([1 + 0.5 * (1 + 0.02 * s) for s in range(10)]))), rel=1e-6)  # geometric mean
    assert relu["gradient-norm growth, largest finite probe / init"].verdict == SUPPORTED
    assert tanh["bounded activation, share of runs that diverge"].verdict == SUPPORTED
    assert tanh["weight-norm growth, largest finite probe / init"].verdict == SUPPORTED
    assert outside and not any(p.decisive for p in outside.values())
    assert outside["weight-norm growth, largest finite probe / init"].value == pytest.approx(1.0)  # reported only
    name = next(p.name for p in result.parts if "relu, exploding std 0.19" in p.name)
    assert "outside the exploding regime" in name


@pytest.mark.parametrize("act,std,diverged,weights,grads,part", [
    ("tanh", 0.5, True, 2.5, 3.0, "bounded activation, share of runs that diverge"),
    ("relu", 0.2165, False, 2.0, 1e3, "share of runs that diverge"),
    ("relu", 0.2165, True, 0.9, 1e3, "weight-norm growth, largest finite probe / init"),
    ("tanh", 0.5, False, 2.5, 1.05, "gradient-norm growth, largest finite probe / init"),
])
def test_claim6_each_exploding_symptom_can_be_contradicted(act, std, diverged, weights, grads, part):
    b = Builder()
    _exploding_cell(b, act, std, diverged=diverged, weights=weights, grads=grads)
    result = evaluate(b, 6)
    # The rule's verdict: shares of 5 runs are not stable under new draws of runs.
    assert _parts(result, act, std)[part].verdict == CONTRADICTED and result.would_be in NOT_SUPPORTED


def test_claim6_counts_runs_that_diverge_before_a_second_probe():
    b = Builder()
    for seed in range(4):
        run = b.run("exploding", seed, activation="relu", init_std=0.5, status="diverged", test_metric=np.nan, **MLP)
        b.layer(run, "weight_norm", [1.0] * 3, step=0)
        b.layer(run, "weight_grad_norm", [1.0] * 3, step=0)
    parts = _parts(evaluate(b, 6), "relu", 0.5)
    growth = parts["weight-norm growth, largest finite probe / init"]
    assert growth.n == 0 and "4 run(s) without a finite probe after step 0" in growth.note


# ------------------------------------------------------------------------------ claim 7

def test_claim7_does_not_count_explosion_as_lessened_vanishing():
    # Without batch norm the gradient decays by 2 decades toward the input; with it, it grows by 3
    # (1.1x per layer over 72 layers): the signed change (+5 decades) would read "lessened".
    b = Builder()
    for seed in range(5):
        for norm, per_layer in (("none", 10 ** (-2 / 72)), ("batch", 10 ** (3 / 72))):
            run = b.run("normalization", seed, activation="sigmoid", norm=norm, depth=73.0)
            b.geometric(run, per_layer * (1 + 1e-4 * seed), depth=73)
    result = evaluate(b, 7)
    span = next(p for p in result.parts if "none - batch" in p.name)
    assert span.value == pytest.approx(2.0 - 3.0, abs=0.02) and span.verdict == CONTRADICTED


def test_claim7_supported_where_batch_norm_brings_the_span_toward_zero():
    b = Builder()
    for seed in range(5):
        for act in ("sigmoid", "tanh"):
            for norm, per_layer in (("none", 10 ** (-4 / 9)), ("batch", 10 ** (0.5 / 9))):
                run = b.run("normalization", seed, activation=act, norm=norm, depth=10.0)
                b.geometric(run, per_layer * (1 + 1e-3 * seed))
    spans = [p for p in evaluate(b, 7).parts if "none - batch" in p.name]
    assert len(spans) == 2 and all(p.value == pytest.approx(3.5, abs=0.05) and p.verdict == SUPPORTED for p in spans)


# ------------------------------------------------------------------------------ claim 8

def test_claim8_decides_only_where_the_gradient_explodes():
    b = Builder()
    for seed in range(8):
        # lr 0.5 (stable): nothing diverges either way, reported; lr 1.4: clipping prevents divergence.
        b.run("clipping_mlp", seed, lr=0.5, clip="none", test_metric=0.4)
        b.run("clipping_mlp", seed, lr=0.5, clip="norm", test_metric=0.4)
        b.run("clipping_mlp", seed, lr=1.4, clip="none", status="diverged", test_metric=np.nan, final_train_loss=np.nan)
        b.run("clipping_mlp", seed, lr=1.4, clip="norm", test_metric=0.4 + 0.01 * seed)
    result = evaluate(b, 8)
    stable = [p for p in result.parts if "lr 0.5" in p.name]
    assert stable and not any(p.decisive for p in stable)
    skill = next(p for p in result.parts if "lr 1.4: skill" in p.name)
    assert skill.value == pytest.approx((0.4 + 0.035 - 0.1) / 0.9, abs=1e-6) and skill.verdict == SUPPORTED
    assert result.verdict == SUPPORTED


def test_claim8_rnn_cells_explode_above_the_crossing_gain():
    b = Builder()
    for seed in range(8):
        for gain in (1.0, 1.2):
            explodes = gain > 1.1
            b.run("clipping_rnn", seed, gain=gain, clip="none", **RNN, status="diverged" if explodes else "ok",
                  test_metric=np.nan if explodes else 0.15)
            # Clipped runs do not diverge but stay at chance: clipping prevented divergence, not failure.
            b.run("clipping_rnn", seed, gain=gain, clip="norm", **RNN, test_metric=(1 / 6) * (1 - 0.01 * seed))
    result = evaluate(b, 8)
    assert not any(p.decisive for p in result.parts if p.name.startswith("clipping_rnn gain 1,"))
    share = next(p for p in result.parts if p.name == "clipping_rnn gain 1.2: share diverged, unclipped - clipped")
    assert share.value == 1.0 and share.decisive
    trains = next(p for p in result.parts if "gain 1.2: skill" in p.name)
    assert trains.value == pytest.approx(0.035, abs=1e-6) and trains.verdict == CONTRADICTED
    assert result.verdict in NOT_SUPPORTED

"""Claims 18 (beta sets the fluctuation) and 20 (batch norm explodes) on synthetic tables with
known answers: each sub-claim supported where the theory holds and contradicted where it fails."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_claims import Builder, evaluate

from gradatlas.analysis import theory
from gradatlas.analysis.claims import CONTRADICTED, SUPPORTED
from gradatlas.analysis.claims.catalog import batchnorm_explosion, width_beta

pytestmark = pytest.mark.unit

SEEDS = range(6)
WIDTHS = (32, 64, 128)
DEPTHS = (4, 8, 16)


def _width_tables(variance, mean_gain=lambda beta: 1.0, seed=0) -> Builder:
    """Runs of width_fluctuations whose Var[ln r] is ``variance(depth, width, predicted)`` (each
    run's batch mean of ln r spread a little around its cell's), and E[r] ``mean_gain(beta)``."""
    rng = np.random.default_rng(seed)
    b = Builder()
    for width in WIDTHS:
        for depth in DEPTHS:
            widths = [width] * depth
            target = variance(depth, width, theory.log_gain_moments(widths)[1])
            for s in SEEDS:
                run = b.run(width_beta.STUDY, s, width=float(width), depth=float(depth), init="he_normal")
                between = 0.1 * target * rng.standard_normal()
                b.layer(run, "log_gain_mean", [between])
                b.layer(run, "log_gain_var", [target * (1 + 0.03 * rng.standard_normal())])
                b.layer(run, "gain_mean", [mean_gain(theory.beta(widths)) * (1 + 0.02 * rng.standard_normal())])
    return b


def _verdicts(result):
    return [part.verdict for part in result.parts]


def test_claim18_supported_where_the_variance_follows_beta():
    result = evaluate(_width_tables(lambda depth, width, predicted: predicted), 18)
    assert _verdicts(result) == [SUPPORTED] * 4
    assert result.verdict == SUPPORTED


def test_claim18_theory_part_contradicted_by_twice_the_variance():
    result = evaluate(_width_tables(lambda depth, width, predicted: 2 * predicted), 18)
    assert _verdicts(result)[0] == CONTRADICTED


def test_claim18_depth_alone_contradicts_the_collapse_and_the_beta_dependence():
    result = evaluate(_width_tables(lambda depth, width, predicted: 0.1 * depth), 18)
    assert _verdicts(result)[1:3] == [CONTRADICTED, CONTRADICTED]


def test_claim18_mean_part_contradicted_by_a_growing_mean():
    result = evaluate(_width_tables(lambda depth, width, predicted: predicted, mean_gain=lambda beta: math.exp(8 * beta)), 18)
    assert _verdicts(result)[3] == CONTRADICTED


ACTIVATIONS = ("relu", "tanh")
BATCHES = (8, 128)


def _bn_tables(factor=batchnorm_explosion.predicted_factor, depth=12, seed=0) -> Builder:
    """Runs of batchnorm_explosion whose backprop norm grows by ``factor(activation, norm, batch)``
    per layer toward the input (times a little noise per run)."""
    rng = np.random.default_rng(seed)
    b = Builder()
    for act in ACTIVATIONS:
        for norm in ("batch", "layer"):
            for batch in BATCHES:
                for s in SEEDS:
                    run = b.run(batchnorm_explosion.STUDY, s, activation=act, norm=norm, batch_size=float(batch),
                                depth=float(depth), init="lecun_normal")
                    b.geometric(run, factor(act, norm, batch) * (1 + 0.002 * rng.standard_normal()), depth)
    return b


def test_claim20_supported_where_the_mean_field_holds():
    result = evaluate(_bn_tables(), 20)
    assert _verdicts(result) == [SUPPORTED] * len(result.parts)
    assert len(result.parts) == len(ACTIVATIONS) + 5


def _changed(where, value):
    def factor(act, norm, batch):
        return value if where(act, norm, batch) else batchnorm_explosion.predicted_factor(act, norm, batch)
    return factor


@pytest.mark.parametrize("where, value, part", [
    (lambda a, n, b: a == "tanh" and n == "batch", 0.9, 1),          # tanh + BN shrinks
    (lambda a, n, b: a == "relu" and n == "batch" and b == 128, 1.4, 2),  # far from sqrt(pi/(pi-1))
    (lambda a, n, b: a == "relu" and n == "batch" and b == 8, 1.15, 3),   # the small batch grows slower
    (lambda a, n, b: n == "batch" and b == 8, 1.0, 4),                    # no batch-size dependence as predicted
    (lambda a, n, b: a == "relu" and n == "layer", 1.2, 5),               # layer norm explodes with ReLU
    (lambda a, n, b: a == "tanh" and n == "layer", 0.8, 6),               # tanh + LN off its mean field
])
def test_claim20_each_sub_claim_can_be_contradicted(where, value, part):
    result = evaluate(_bn_tables(_changed(where, value)), 20)
    assert _verdicts(result)[part] == CONTRADICTED

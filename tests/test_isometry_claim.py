"""Claim 17 on synthetic tables: supported where the recorded spectra follow the prediction,
contradicted where a case's spread grows at another slope or an isometric net spreads."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradatlas.analysis import claims
from gradatlas.analysis.claims import CONTRADICTED, SUPPORTED
from gradatlas.analysis.claims.catalog.isometry import CRITICAL, INITS
from gradatlas.analysis.theory import normalized_variance, preactivation_variances, weight_ensemble
from tests.test_claims import Builder

pytestmark = pytest.mark.unit

DEPTHS = (1, 2, 4, 8, 16, 32)
WIDTH = 128.0
H0_SECOND_MOMENT = 0.3


def _spectra(builder: Builder, distort=lambda init, activation, predicted: predicted, seeds: int = 4) -> None:
    for seed in range(seeds):
        for init in INITS:
            for activation, gain in CRITICAL:
                run = builder.run("isometry", seed, activation=activation, init=init, gain=gain, bias=0.0,
                                  depth=33.0, width=WIDTH)
                builder.layer(run, "act_mean", [0.0], head=None)
                builder.layer(run, "act_std", [math.sqrt(H0_SECOND_MOMENT)], head=None)
                qs = preactivation_variances(activation, gain**2, gain**2 * H0_SECOND_MOMENT, max(DEPTHS))
                predicted = normalized_variance(activation, weight_ensemble(init), qs)[np.array(DEPTHS) - 1]
                measured = distort(init, activation, predicted) * (1 + 0.01 * (seed - 1.5)) + 1e-4 * seed
                for depth, value in zip(DEPTHS, measured):
                    for statistic, v in (("mean", 1.0), ("var", value), ("max", 1.0 + value),
                                         ("normalized_var", value)):
                        builder.layers.append({"run": run, "step": 0, "layer": depth, "name": f"hidden.{depth}",
                                               "quantity": f"jacobian_sv2.{statistic}", "value": float(v)})


def _parts(builder: Builder) -> dict:
    return {p.name: p for p in claims.CLAIMS[17].evaluate(*builder.tables()).parts}


def test_claim17_supported_where_the_spectra_follow_the_prediction():
    b = Builder()
    _spectra(b)
    parts = _parts(b)
    assert len(parts) == 12
    assert {name: p.verdict for name, p in parts.items()} == {name: SUPPORTED for name in parts}


def test_claim17_slope_contradicted_when_relu_spreads_at_half_the_slope():
    b = Builder()
    _spectra(b, lambda init, activation, predicted: predicted * (0.5 if activation == "relu" else 1.0))
    parts = _parts(b)
    slope = [p for name, p in parts.items() if name.startswith("orthogonal/relu") and "slope" in name]
    assert [p.verdict for p in slope] == [CONTRADICTED]
    assert parts[next(n for n in parts if n.startswith("orthogonal/linear") and "slope" in n)].verdict == SUPPORTED


def test_claim17_isometry_contradicted_when_orthogonal_tanh_spreads_like_gaussian_weights():
    b = Builder()
    spread = np.array(DEPTHS, dtype=float)
    _spectra(b, lambda init, activation, predicted: spread if (init, activation) == ("orthogonal", "tanh")
             else predicted)
    parts = _parts(b)
    tanh = {name: p.verdict for name, p in parts.items() if name.startswith("orthogonal/tanh")}
    assert set(tanh.values()) == {CONTRADICTED} and len(tanh) == 2


def test_claim17_spread_contradicted_when_gaussian_linear_stays_isometric():
    b = Builder()
    _spectra(b, lambda init, activation, predicted: predicted * 0.0 if (init, activation) == ("lecun_normal", "linear")
             else predicted)
    parts = _parts(b)
    spreads = [p for name, p in parts.items() if name.startswith("lecun_normal/linear") and "spreads" in name]
    assert [p.verdict for p in spreads] == [CONTRADICTED]

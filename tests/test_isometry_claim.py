"""Claim 17 on synthetic tables: supported where the recorded spectra follow the prediction,
contradicted where a case's spread grows at another slope or an isometric net spreads; its
training-speed part supported where orthogonal nets reach the loss sooner, contradicted where
they reach it later."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gradatlas.analysis import claims
import pandas as pd

from gradatlas.analysis.claims import CONTRADICTED, NO_DATA, SUPPORTED, Tables
from gradatlas.analysis.claims.catalog.isometry import CRITICAL, INITS, LOSS_WINDOW, steps_to_loss
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
    """The spectra parts (the training study has no runs here: its part reads no data)."""
    parts = claims.CLAIMS[17].evaluate(*builder.tables()).parts
    speed = [p for p in parts if "training speed" in p.name]
    assert [p.verdict for p in speed] == [NO_DATA]
    return {p.name: p for p in parts if p not in speed}


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


# ------------------------------------------------------------------------------ training speed

def test_steps_to_loss_is_the_first_step_whose_trailing_mean_reaches_the_level():
    steps = pd.DataFrame({"step": np.arange(300), "loss": 2.3 * np.exp(-np.arange(300) / 400.0)})
    trailing = np.convolve(steps["loss"], np.ones(LOSS_WINDOW) / LOSS_WINDOW, mode="valid")  # ends at step i + W - 1
    expected = int(np.flatnonzero(trailing <= 2.0)[0]) + LOSS_WINDOW - 1
    assert steps_to_loss(steps, 2.0, 300.0) == expected
    assert steps_to_loss(steps, 1.0, 300.0) == 301.0  # never: the budget + 1
    assert steps_to_loss(steps.iloc[0:0], 2.0, 300.0) == 301.0


def _speed_tables(orthogonal_rate: float, gaussian_rate: float, seeds: int = 6):
    b, rows = Builder(), []
    for seed in range(seeds):
        for activation in ("linear", "tanh"):
            for init, rate in (("lecun_normal", gaussian_rate), ("orthogonal", orthogonal_rate)):
                run = b.run("isometry_training", seed, activation=activation, init=init, steps=400.0, lr=0.015)
                decay = rate * (1 + 0.03 * (seed - 2.5))
                rows += [{"run": run, "step": s, "loss": 2.3 * math.exp(-s / decay)} for s in range(400)]
    runs, layers, timesteps = b.tables()
    return runs, layers, timesteps, Tables(runs, layers, timesteps, pd.DataFrame(rows))


def _speed_parts(orthogonal_rate: float, gaussian_rate: float) -> list:
    runs, layers, timesteps, tables = _speed_tables(orthogonal_rate, gaussian_rate)
    result = claims.CLAIMS[17].evaluate(runs, layers, timesteps, tables=tables)
    return [p for p in result.parts if "training speed" in p.name]


def test_claim17_speed_supported_where_orthogonal_nets_reach_the_loss_sooner():
    parts = _speed_parts(orthogonal_rate=300.0, gaussian_rate=600.0)
    assert [p.verdict for p in parts] == [SUPPORTED, SUPPORTED]
    def first_reach(rate: float) -> float:  # the trailing mean by numpy, per seed, as the fixture draws them
        out = []
        for seed in range(6):
            loss = 2.3 * np.exp(-np.arange(400) / (rate * (1 + 0.03 * (seed - 2.5))))
            trailing = np.convolve(loss, np.ones(LOSS_WINDOW) / LOSS_WINDOW, mode="valid")
            out.append(np.log(np.flatnonzero(trailing <= 2.0)[0] + LOSS_WINDOW - 1))
        return float(np.mean(out))

    assert parts[0].value == pytest.approx(first_reach(300.0) - first_reach(600.0), abs=1e-9)


def test_claim17_speed_contradicted_where_orthogonal_nets_are_slower():
    parts = _speed_parts(orthogonal_rate=600.0, gaussian_rate=300.0)
    assert [p.verdict for p in parts] == [CONTRADICTED, CONTRADICTED]

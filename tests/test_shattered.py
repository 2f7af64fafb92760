"""Shattered gradients: the mean-field correlation of input gradients (theory.shattered) against
an independent finite-width numpy simulation, and claim 21 on synthetic tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from gradatlas.analysis import claims
from gradatlas.analysis.claims import CONTRADICTED, MIXED, SUPPORTED
from gradatlas.analysis.claims.catalog import shattered as claim21
from gradatlas.analysis.theory import shattered
from gradatlas.run.probes.arc import ARC_STEP

pytestmark = pytest.mark.unit

WIDTH, SEEDS, FEATURES = 256, 48, 40
# The simulation's mean over seeds must lie within this many standard errors of the theory.
SEED_SPREAD_Z = 4.0


def simulated_cosine(kind: str, theta: float, depth: int, seed: int) -> float:
    """cos(grad_x f(x), grad_x f(x')) of one random zero-bias ReLU network (He weights), inputs
    at angle theta, f a random linear readout of the last ReLU layer; written apart from the
    package: numpy forward and hand-written backward."""
    rng = np.random.default_rng(seed)
    x0, u = rng.standard_normal(FEATURES), rng.standard_normal(FEATURES)
    u -= u @ x0 / (x0 @ x0) * x0
    u *= np.linalg.norm(x0) / np.linalg.norm(u)
    x = np.stack([x0, math.cos(theta) * x0 + math.sin(theta) * u])
    first = rng.standard_normal((FEATURES, WIDTH)) * np.sqrt(2.0 / FEATURES)
    weights = [rng.standard_normal((WIDTH, WIDTH)) * np.sqrt(2.0 / WIDTH) for _ in range(depth - 1)]
    readout = rng.standard_normal(WIDTH)
    if kind == "mlp":
        masks, h = [], x @ first
        masks.append(h > 0)
        for w in weights:
            h = np.maximum(h, 0) @ w
            masks.append(h > 0)
        g = readout * masks[-1]
        for layer in range(depth - 1, 0, -1):
            g = (g @ weights[layer - 1].T) * masks[layer - 1]
    else:  # stem h_0 = W_0 x, blocks h_l = h_{l-1} + W_l relu(h_{l-1}), readout of relu(h_B)
        streams = [x @ first]
        for w in weights:
            streams.append(streams[-1] + np.maximum(streams[-1], 0) @ w)
        g = readout * (streams[-1] > 0)
        for block in range(depth - 1, 0, -1):
            g = g + (g @ weights[block - 1].T) * (streams[block - 1] > 0)
    g = g @ first.T
    return float(g[0] @ g[1] / np.linalg.norm(g[0]) / np.linalg.norm(g[1]))


@pytest.mark.parametrize("kind", ["mlp", "resmlp"])
@pytest.mark.parametrize("depth", [2, 8, 24])
def test_mean_field_correlation_matches_a_finite_width_simulation(kind, depth):
    theta = 8 * ARC_STEP
    cosines = np.array([simulated_cosine(kind, theta, depth, seed) for seed in range(SEEDS)])
    predicted = shattered.GRADIENT_CORRELATION[kind](theta, depth, 2.0)
    spread = cosines.std(ddof=1) / math.sqrt(SEEDS)
    assert abs(cosines.mean() - predicted) < SEED_SPREAD_Z * spread + 0.01, (cosines.mean(), predicted, spread)


def test_closed_forms_at_the_ends():
    assert shattered.plain_gradient_correlation(0.0, 30) == 1.0
    # One ReLU layer: P(both units active) / P(one active) = 1 - theta / pi.
    assert shattered.plain_gradient_correlation(math.pi / 2, 1) == pytest.approx(0.5)
    # The residual net decays more slowly than the plain one at He weights.
    theta = 8 * ARC_STEP
    depths = np.array([2, 4, 8, 16, 32])
    plain = shattered.decay_rate(depths, [shattered.plain_gradient_correlation(theta, d) for d in depths])
    residual = shattered.decay_rate(depths, [shattered.residual_gradient_correlation(theta, d) for d in depths])
    assert 0 < residual < 0.7 * plain


def _tables(plain_law, residual_law, seeds=6, noise=0.02):
    rng = np.random.default_rng(0)
    runs, layers = [], []
    for model, law in (("mlp", plain_law), ("resmlp", residual_law)):
        for depth in (2, 4, 8, 16, 32):
            for seed in range(seeds):
                run = f"shattered/model-{model}/depth-{depth}/seed-{seed}"
                runs.append({"run": run, "study": "shattered", "cell": f"model-{model}/depth-{depth}", "seed": seed,
                             "model": model, "depth": depth, "width": 256.0, "activation": "relu", "init": "he_normal",
                             "gain": 1.0, "init_std": 0.01, "bias": 0.0, "norm": "none", "status": "ok"})
                value = law(claim21.SEPARATION * ARC_STEP, depth, 2.0) * (1 + noise * rng.standard_normal())
                for s in range(1, 33):
                    layers.append({"run": run, "step": 0, "layer": s, "name": "arc", "quantity": "input_grad_corr",
                                   "value": value if s == claim21.SEPARATION else 0.5})
    return (pd.DataFrame(runs), pd.DataFrame(layers), pd.DataFrame(columns=["run", "step", "t", "quantity", "value"]))


def test_claim21_supported_where_the_correlations_follow_the_theory():
    result = claims.CLAIMS[21].evaluate(*_tables(shattered.plain_gradient_correlation,
                                                 shattered.residual_gradient_correlation))
    assert [p.verdict for p in result.parts] == [SUPPORTED] * 4
    assert result.verdict == SUPPORTED


def test_claim21_contradicted_where_the_residual_net_shatters_faster_than_the_plain_one():
    result = claims.CLAIMS[21].evaluate(*_tables(shattered.plain_gradient_correlation,
                                                 lambda theta, depth, w2: shattered.plain_gradient_correlation(
                                                     theta, depth, w2) ** 1.5))
    verdicts = [p.verdict for p in result.parts]
    assert verdicts[0] == verdicts[1] == SUPPORTED
    assert verdicts[2] == verdicts[3] == CONTRADICTED
    assert result.verdict == MIXED

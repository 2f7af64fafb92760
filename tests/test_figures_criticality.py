"""The criticality figures (claims 4 and 16) against what was put into a synthetic summary: cells
hold the seeds' geometric-mean factor, the crossings sit where the data and the theory put them,
the depth constant is the claim's, and the captions name what misses its prediction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.collections import QuadMesh

from gradatlas.analysis import claims
from gradatlas.analysis.figures import FIGURES, criticality
from gradatlas.analysis.theory import depth_scales, iterated

from tests.test_claims import Builder

pytestmark = pytest.mark.unit

W2S = (1.0, 1.5, 2.0, 2.5, 3.0)
B2S = (0.0, 0.05)


def _phase(builder: Builder, shift: float = 1.0, seeds: int = 4) -> dict:
    """criticality runs with factor sqrt(w / (shift * predicted crossing)) (per seed x (1 + 0.01 seed)):
    the measured crossing lies at shift x the iterated map's. Returns the factors put in."""
    put = {}
    for b2 in B2S:
        crossing = shift * iterated.crossing_sigma_w2("tanh", min(W2S), max(W2S), b2, depth=20)
        for seed in range(seeds):
            for w in W2S:
                factor = math.sqrt(w / crossing) * (1 + 0.01 * seed)
                run = builder.run("criticality", seed, activation="tanh", init="lecun_normal", gain=math.sqrt(w),
                                  bias_std=math.sqrt(b2), depth=20.0, width=256.0)
                builder.geometric(run, factor)
                put.setdefault((w, b2), []).append(factor)
    return put


def _mesh(fig) -> np.ndarray:
    meshes = [c for c in fig.axes[0].collections if isinstance(c, QuadMesh)]  # not the colour bar's
    assert len(meshes) == 1
    return np.ma.filled(meshes[0].get_array(), np.nan)


def test_phase_cells_are_the_geometric_mean_factor_and_numbered():
    b = Builder()
    put = _phase(b)
    runs, layers, timesteps = b.tables()
    fig = criticality.criticality_phase(runs, layers)
    cells = _mesh(fig).reshape(len(B2S), len(W2S))
    for i, b2 in enumerate(B2S):
        for j, w in enumerate(W2S):
            assert cells[i, j] == pytest.approx(math.exp(np.mean(np.log(put[(w, b2)]))), rel=1e-9)
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {f"{v:.2f}" for v in cells.ravel()} <= texts
    # The colour scale is symmetric about 1 on a log scale.
    norm = [c for c in fig.axes[0].collections if isinstance(c, QuadMesh)][0].norm
    assert norm.vmin * norm.vmax == pytest.approx(1.0)


def test_phase_draws_the_critical_line_and_the_measured_crossings():
    b = Builder()
    _phase(b)
    fig = criticality.criticality_phase(*b.tables()[:2])
    ax = fig.axes[0]
    solid = [ln for ln in ax.lines if ln.get_linestyle() == "-" and len(ln.get_xdata()) > 10][0]
    # On the fixed point's critical line chi_1 = 1 at its sigma_b^2 (closed form: 1 at sigma_b^2 = 0).
    x, y = np.asarray(solid.get_xdata()), np.asarray(solid.get_ydata())
    assert np.interp(0.05, y, x) == pytest.approx(depth_scales.critical_sigma_w2("tanh", 0.05), rel=2e-3)
    assert x[np.argmin(y)] == pytest.approx(1.0, abs=1e-3)
    # The measured crossing dots: where the factor put in crosses 1 (geometric mean over seeds).
    dots = [ln for ln in ax.lines if ln.get_marker() == "o"]
    for dot, b2 in zip(dots, B2S):
        crossing = iterated.crossing_sigma_w2("tanh", min(W2S), max(W2S), b2, depth=20)
        expected = math.exp(np.mean([math.log(crossing / (1 + 0.01 * s) ** 2) for s in range(4)]))
        assert dot.get_xdata()[0] == pytest.approx(expected, rel=1e-3) and dot.get_ydata()[0] == pytest.approx(b2)


def test_phase_caption_names_the_sigma_b2_that_miss_the_prediction():
    good, bad = Builder(), Builder()
    _phase(good)
    _phase(bad, shift=1.3)
    caption = FIGURES["criticality_phase"].caption
    assert "Every measured crossing (geometric mean over seeds) lies within" in caption(*good.tables())
    text = caption(*bad.tables())
    assert "Outside a factor $1 \\pm 0.1$ of the prediction: $\\sigma_b^2 = 0$, $\\sigma_b^2 = 0.05$" in text
    assert "width 256, depth 20" in text and "4 seeds" in text


def _training(builder: Builder, constant: float, seeds: int = 4) -> None:
    from gradatlas.analysis.claims.catalog.criticality import xi_c
    for seed in range(seeds):
        for w in (0.5, 0.75, 1.0, 4.0):
            for depth in (4, 8, 16, 32, 64):
                trains = depth < constant * xi_c(w, 0.05)
                builder.run("trainable_depth", seed, activation="tanh", init="lecun_normal", gain=math.sqrt(w),
                            bias_std=math.sqrt(0.05), depth=float(depth), width=64.0,
                            test_metric=0.6 if trains else 0.1 + 0.01 * seed)


def test_trainable_depth_draws_the_claims_constant_and_the_mean_skill():
    b = Builder()
    _training(b, 6.0)
    runs, layers, timesteps = b.tables()
    part = next(p for p in claims.CLAIMS[16].evaluate(runs, layers, timesteps).parts
                if p.name.startswith("trainable depth / xi_c"))
    fig = criticality.trainable_depth_phase(runs, layers)
    ax = fig.axes[0]
    # The solid curve is c xi_c with the claim's c: check it against xi_c from the theory.
    solid = [ln for ln in ax.lines if ln.get_linestyle() == "-" and ln.get_linewidth() > 1][0]
    w, y = np.asarray(solid.get_xdata()), np.asarray(solid.get_ydata())
    k = int(np.argmin(abs(w - 0.75)))
    assert y[k] == pytest.approx(part.value * depth_scales.depth_scales("tanh", w[k], 0.05)["xi_c"], rel=1e-6)
    # Cells: mean skill over seeds, (0.1 + 0.01 seed - 0.1) / 0.9 where it does not train.
    cells = _mesh(fig)
    assert np.nanmin(cells) == pytest.approx(0.015 / 0.9) and np.nanmax(cells) == pytest.approx(0.5 / 0.9)
    caption = FIGURES["trainable_depth_phase"].caption(runs, layers, timesteps)
    assert f"$c = {part.value:.3g}$ [{part.ci_low:.3g}, {part.ci_high:.3g}]" in caption
    assert "20 of 20 cells train as depth" in caption


def test_trainable_depth_outlines_the_cells_on_the_wrong_side():
    from matplotlib.patches import Rectangle

    b = Builder()
    for seed in range(4):  # fails at depth 8 only: deeper cells train against the fitted boundary
        for w in (0.5, 1.0, 4.0):
            for depth in (4, 8, 16):
                b.run("trainable_depth", seed, activation="tanh", init="lecun_normal", gain=math.sqrt(w),
                      bias_std=math.sqrt(0.05), depth=float(depth), width=64.0,
                      test_metric=0.1 if depth == 8 else 0.6)
    runs, layers, timesteps = b.tables()
    c = next(p for p in claims.CLAIMS[16].evaluate(runs, layers, timesteps).parts
             if p.name.startswith("trainable depth / xi_c")).value
    # The cells on the wrong side of depth < c xi_c, xi_c from the theory, c from the claim.
    wrong = {(w, d) for w in (0.5, 1.0, 4.0) for d in (4, 8, 16)
             if (d != 8) != (d < c * depth_scales.depth_scales("tanh", w, 0.05)["xi_c"])}
    assert (0.5, 16) in wrong
    fig = criticality.trainable_depth_phase(runs, layers)
    outlined = [p for p in fig.axes[0].patches if isinstance(p, Rectangle) and not p.get_fill()]
    inside = {(w, d) for w in (0.5, 1.0, 4.0) for d in (4, 8, 16) for p in outlined
              if p.get_x() < w < p.get_x() + p.get_width() and p.get_y() < d < p.get_y() + p.get_height()}
    assert len(outlined) == len(wrong) and inside == wrong
    assert "$\\sigma_w^2 = 0.5$ at depth 16" in FIGURES["trainable_depth_phase"].caption(runs, layers, timesteps)


def _sweep(builder: Builder, act: str, critical: float, seeds: int = 4) -> None:
    for seed in range(seeds):
        for k in range(-2, 7):
            gain = 2 ** (k / 2)
            run = builder.run("weight_crossing", seed, activation=act, init="lecun_normal", gain=gain, bias=0.0,
                              depth=10.0, width=256.0)
            builder.geometric(run, math.sqrt(gain ** 2 / critical))


def test_weight_crossing_marks_measured_and_predicted_crossings():
    b = Builder()
    _sweep(b, "relu", 2.0)
    _sweep(b, "tanh", 3.0)
    runs, layers, timesteps = b.tables()
    fig = criticality.weight_crossing(runs, layers)
    bottom = fig.axes[1]
    measured = {round(ln.get_ydata()[0]): ln.get_xdata()[0] for ln in bottom.lines if ln.get_marker() == "o"}
    predicted = {round(ln.get_ydata()[0]): ln.get_xdata()[0] for ln in bottom.lines if ln.get_marker() == "D"}
    # Rows in the activations' order: tanh, relu. Log factor linear in log sigma_w^2: crossing exact.
    assert measured == {0: pytest.approx(3.0), 1: pytest.approx(2.0)}
    assert predicted[1] == pytest.approx(2.0, rel=1e-6)  # ReLU: sqrt(sigma_w^2 / 2) at any depth
    assert predicted[0] == pytest.approx(iterated.crossing_sigma_w2("tanh", 0.5, 8.0, depth=10), rel=1e-6)
    # The measured factor per grid point and the iterated map's line, on log-log axes.
    top = fig.axes[0]
    assert top.get_xscale() == top.get_yscale() == "log"
    dots = [ln for ln in top.lines if ln.get_marker() == "o" and ln.get_label() == "relu"][0]
    assert np.allclose(dots.get_ydata(), np.sqrt(np.asarray(dots.get_xdata()) / 2.0))
    caption = FIGURES["weight_crossing"].caption(runs, layers, timesteps)
    assert "relu 1.00" in caption and "Outside a factor $1 \\pm 0.1$ of the prediction: tanh" in caption


def test_trainable_depth_caption_says_when_c_is_not_decided():
    from gradatlas.analysis.claims.catalog.criticality import xi_c
    b = Builder()
    for seed in range(4):  # seeds 2 and 3 train at every depth: c rests on seeds 0 and 1
        for w in (0.5, 1.0):
            for depth in (4, 8, 16, 32):
                trains = seed >= 2 or depth < 6.0 * xi_c(w, 0.05)
                b.run("trainable_depth", seed, activation="tanh", init="lecun_normal", gain=math.sqrt(w),
                      bias_std=math.sqrt(0.05), depth=float(depth), width=64.0, test_metric=0.6 if trains else 0.1)
    caption = FIGURES["trainable_depth_phase"].caption(*b.tables())
    assert "$c$ rests on 2 of 4 seeds: shown, not decided" in caption and "the claim asks" not in caption

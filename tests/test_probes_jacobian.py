"""jacobian_sv2 against an independent reference: the hidden-to-hidden Jacobian of a
hand-written float64 forward by central finite differences, its singular values by numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from probe_references import REF_ACT, _mlp, probe_step

from gradatlas.run.config import ProbeConfig
from gradatlas.run.probes.quantities.jacobian_sv2 import STATISTICS, probed_depths

pytestmark = pytest.mark.unit

INPUTS = 3
FD_STEP = 1e-6


def reference_hidden(model, x, activation):
    """h_0 of every example and, per hidden layer l >= 1, the map h_0 -> h_l, in float64 numpy."""
    act = REF_ACT[activation]
    weights = [(lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()) for lin in model.linears]

    def phi(z):
        return act(torch.as_tensor(z)).numpy()

    h0 = phi(x.double().numpy() @ weights[0][0].T + weights[0][1])

    def forward(h, depth):
        for w, b in weights[1 : depth + 1]:
            h = phi(h @ w.T + b)
        return h

    return h0, forward


def finite_difference_jacobian(f, h):
    """dF/dh by central differences, column by column."""
    columns = []
    for j in range(len(h)):
        step = np.zeros_like(h)
        step[j] = FD_STEP
        columns.append((f(h + step) - f(h - step)) / (2 * FD_STEP))
    return np.stack(columns, axis=1)


def reference_statistics(per_input):
    sv2 = np.concatenate(per_input)
    return {"mean": sv2.mean(), "moment2": np.mean(sv2**2), "var": sv2.var(), "max": sv2.max(),
            "normalized_var": np.mean([v.var() / v.mean() ** 2 for v in per_input])}


@pytest.mark.parametrize("activation", ["linear", "tanh", "relu"])
def test_jacobian_spectrum_matches_finite_differences_and_numpy_svd(activation):
    model, data = _mlp(activation, depth=6, width=7, gain=1.3)
    x, y = data.x_train, data.y_train
    layers, _, names = probe_step(model, data, x, y, cfg=ProbeConfig(jacobian_inputs=INPUTS))
    h0, forward = reference_hidden(model, x, activation)
    recorded = sorted({index for index, q in layers if q.startswith("jacobian_sv2.")})
    assert recorded == [1, 2, 4, 5] == probed_depths(6)
    for depth in recorded:
        assert names[depth] == f"hidden.{depth}"
        jacobians = [finite_difference_jacobian(lambda h: forward(h, depth), h0[b]) for b in range(INPUTS)]
        per_input = [np.linalg.svd(j, compute_uv=False) ** 2 for j in jacobians]
        expected = reference_statistics(per_input)
        for statistic in STATISTICS:
            assert layers[(depth, f"jacobian_sv2.{statistic}")] == pytest.approx(expected[statistic], rel=1e-5)
    # The spectrum has spread: the statistics are not those of an isometry.
    assert layers[(recorded[-1], "jacobian_sv2.var")] > 1e-3


def test_orthogonal_linear_net_is_an_isometry():
    model, data = _mlp("linear", depth=5, width=8, init="orthogonal")
    layers, _, _ = probe_step(model, data, data.x_train, data.y_train, cfg=ProbeConfig(jacobian_inputs=2))
    for depth in probed_depths(5):
        assert layers[(depth, "jacobian_sv2.mean")] == pytest.approx(1.0, rel=1e-5)
        assert layers[(depth, "jacobian_sv2.max")] == pytest.approx(1.0, rel=1e-5)
        assert layers[(depth, "jacobian_sv2.var")] < 1e-10
        assert layers[(depth, "jacobian_sv2.normalized_var")] < 1e-10


def test_jacobian_spectrum_is_off_by_default_and_changes_no_other_row():
    model, data = _mlp("tanh", depth=4)
    x, y = data.x_train, data.y_train
    plain, _, _ = probe_step(model, data, x, y)
    model.zero_grad(set_to_none=True)
    probed, _, _ = probe_step(model, data, x, y, cfg=ProbeConfig(jacobian_inputs=2))
    assert not any(q.startswith("jacobian_sv2") for _, q in plain)
    assert {key: value for key, value in probed.items() if not key[1].startswith("jacobian_sv2")} == plain
    assert {q for _, q in probed if q.startswith("jacobian_sv2")} == {f"jacobian_sv2.{s}" for s in STATISTICS}


@pytest.mark.parametrize("hidden, depths", [(1, []), (2, [1]), (3, [1, 2]), (5, [1, 2, 4]), (9, [1, 2, 4, 8]),
                                            (64, [1, 2, 4, 8, 16, 32, 63]), (65, [1, 2, 4, 8, 16, 32, 64])])
def test_probed_depths_are_powers_of_two_and_the_last(hidden, depths):
    assert probed_depths(hidden) == depths

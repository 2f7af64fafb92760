"""Probes against independent references: hand-written forward passes in float64, per-example
autograd, numpy formulas for the activation statistics, and torch's own recurrent cells.

Convention under test (gradatlas.run.probes): a backpropagated norm is the norm of the gradient of the
*per-example* loss, averaged over the batch. The references compute that directly from
per-example losses (``reduction="none"``): summing them and differentiating gives, in row b,
the gradient of example b's own loss, because examples do not interact without batch norm.
"""

from __future__ import annotations

import copy
import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import fake_dataset
from probe_references import (
    IN,
    OUT,
    REF_ACT,
    REF_DERIV,
    B,
    _approx,
    _mlp,
    _sig,
    per_example_norms,
    probe_step,
    ref_dead,
    reference_mlp,
)

from gradatlas.run.activations import ACTIVATIONS, make_activation
from gradatlas.run.config import ModelConfig, ProbeConfig
from gradatlas.run.loop import task_loss
from gradatlas.run.models import Trace, make_model
from gradatlas.run.probes import (
    DEAD_SLOPE_ABSOLUTE,
    SCHEDULES,
    Prober,
    largest_slope,
    probe_schedule,
    probe_set_schedule,
    probe_set_trace,
    recorded_steps,
    registered,
)
from gradatlas.run.probes.quantity import LAYERS, TIMESTEPS, LayerQuantity, register

pytestmark = pytest.mark.unit


# --------------------------------------------------------------------------- MLP


@pytest.mark.parametrize("activation", sorted(REF_ACT))
def test_mlp_backprop_norm_per_layer(activation):
    model, data = _mlp(activation)
    x, y = data.x_train, data.y_train
    zs, _, out, losses = reference_mlp(model, x, y, activation)
    layers, _, names = probe_step(model, data, x, y)
    assert [names[i] for i in sorted(names)] == ["hidden.0", "hidden.1", "hidden.2", "head"]
    for index, z in enumerate([*zs, out]):
        expected = per_example_norms(losses, [z])
        assert expected > 0
        assert layers[(index, "backprop_norm")] == _approx(expected)


def test_backprop_norm_is_b_times_autograd_of_batch_mean():
    """The documented convention, stated the other way round: B x grad of the mean loss."""
    model, data = _mlp("tanh")
    x, y = data.x_train, data.y_train
    zs, _, _, losses = reference_mlp(model, x, y, "tanh")
    (grad,) = torch.autograd.grad(losses.mean(), [zs[0]])
    expected = (B * grad).norm(dim=1).mean().item()
    layers, _, _ = probe_step(model, data, x, y)
    assert layers[(0, "backprop_norm")] == _approx(expected)


def test_backprop_norm_does_not_depend_on_batch_size():
    model, data = _mlp("tanh")
    x, y = data.x_train, data.y_train
    single, _, _ = probe_step(model, data, x, y)
    doubled, _, _ = probe_step(model, data, torch.cat([x, x]), torch.cat([y, y]))
    for index in range(4):
        assert doubled[(index, "backprop_norm")] == _approx(single[(index, "backprop_norm")], rel=1e-5)
    # The weight gradient of a batch mean is the same too; its norm is not scaled.
    assert doubled[(0, "weight_grad_norm")] == _approx(single[(0, "weight_grad_norm")], rel=1e-5)


@pytest.mark.parametrize("activation", ["tanh", "relu", "prelu"])
def test_weight_grad_norm_matches_plain_backward(activation):
    model, data = _mlp(activation)
    x, y = data.x_train, data.y_train
    plain = copy.deepcopy(model)
    F.cross_entropy(plain(x), y).backward()
    expected = [torch.linalg.norm(lin.weight.grad).item() for lin in [*plain.linears, plain.head]]
    layers, _, _ = probe_step(model, data, x, y)
    for index, value in enumerate(expected):
        assert layers[(index, "weight_grad_norm")] == _approx(value, rel=1e-6)


@pytest.mark.parametrize("activation", sorted(REF_ACT))
def test_activation_statistics_match_numpy(activation):
    model, data = _mlp(activation, gain=2.0)
    x, y = data.x_train, data.y_train
    zs, hs, _, _ = reference_mlp(model, x, y, activation)
    layers, _, _ = probe_step(model, data, x, y)
    for index, (z, h) in enumerate(zip(zs, hs)):
        h = h.detach().numpy()
        assert layers[(index, "act_mean")] == _approx(np.mean(h), rel=1e-5, abs=1e-7)
        assert layers[(index, "act_std")] == _approx(np.std(h), rel=1e-5)  # population std
        assert layers[(index, "dead_frac")] == np.mean(ref_dead(activation, z.detach().numpy()))
        assert layers[(index, "died_frac")] == 0.0  # the first measured step is the reference
    # The head has no activation: no activation statistics.
    assert (3, "act_mean") not in layers and (3, "saturated_frac") not in layers
    assert ((0, "prelu_slope") in layers) == (activation == "prelu")


@pytest.mark.parametrize("activation", sorted(REF_DERIV))
def test_saturated_frac_matches_formula(activation):
    derivative, sup = REF_DERIV[activation]
    # Large weights push sigmoid/tanh units into saturation; check the case is non-trivial.
    model, data = _mlp(activation, width=16, init="normal", gain=1.0, n=32)
    for linear in model.linears:
        torch.nn.init.normal_(linear.weight, std=1.5)
    x, y = data.x_train, data.y_train
    zs, _, _, _ = reference_mlp(model, x, y, activation)
    layers, _, _ = probe_step(model, data, x, y)
    fractions = []
    for index, z in enumerate(zs):
        expected = np.mean(np.abs(derivative(z.detach().numpy())) < 0.1 * sup)
        fractions.append(expected)
        assert layers[(index, "saturated_frac")] == pytest.approx(expected, abs=1e-6)
    assert 0 < max(fractions) < 1


def test_saturation_threshold_is_configurable():
    model, data = _mlp("tanh", width=16, n=32)
    for linear in model.linears:
        torch.nn.init.normal_(linear.weight, std=1.5)
    x, y = data.x_train, data.y_train
    zs, _, _, _ = reference_mlp(model, x, y, "tanh")
    layers, _, _ = probe_step(model, data, x, y, cfg=ProbeConfig(saturation=0.5))
    z = zs[1].detach().numpy()
    assert layers[(1, "saturated_frac")] == pytest.approx(np.mean(1 - np.tanh(z) ** 2 < 0.5), abs=1e-6)


def test_dead_frac_counts_units_dead_for_every_example():
    model, data = _mlp("relu", width=5)
    with torch.no_grad():
        model.linears[1].bias[:2] = -1e3  # two units of layer 1 output 0 for every input
        model.linears[1].bias[2] = 0.0
        model.linears[1].weight[2] = 0.0  # one more unit with z == 0 exactly: dead as well
    x, y = data.x_train, data.y_train
    _, hs, _, _ = reference_mlp(model, x, y, "relu")
    h = hs[1].detach().numpy()
    expected = np.mean(np.all(h == 0, axis=0))
    assert expected == pytest.approx(3 / 5)
    layers, _, _ = probe_step(model, data, x, y)
    assert layers[(1, "dead_frac")] == pytest.approx(expected)
    # Dead units have zero slope, so they count as saturated for every example.
    assert layers[(1, "saturated_frac")] >= 3 / 5


def _negative_regime(activation, slope):
    """An MLP whose hidden units all sit in the negative regime for every example (biases -50)."""
    torch.manual_seed(0)
    data = fake_dataset(n=64, input_dim=IN, output_dim=OUT, seed=0)
    cfg = ModelConfig(name="mlp", depth=3, width=8, activation=activation, slope=slope, init="xavier_normal",
                      bias_init=-50.0)
    return make_model(data, cfg), data


def test_rectifier_units_in_the_negative_regime_are_dead_only_when_they_pass_almost_no_gradient():
    leaky, data = _negative_regime("leaky_relu", 0.01)
    x, y = data.x_train, data.y_train
    with torch.no_grad():
        h = leaky.acts[0](leaky.linears[0](x))
    assert (h != 0).all()  # leaky units never output exactly 0: "output == 0" could not fail them
    relu, _ = _negative_regime("relu", None)
    dead = {"relu": probe_step(relu, data, x, y)[0], "leaky_relu": probe_step(leaky, data, x, y)[0]}
    # A PReLU unit wholly negative at learned slope a passes |a| of the gradient: at 0.04 (below
    # the old relative threshold 0.05) it is alive, below DEAD_SLOPE_ABSOLUTE it is dead.
    for slope in (0.25, 0.04, 0.5 * DEAD_SLOPE_ABSOLUTE, -0.5 * DEAD_SLOPE_ABSOLUTE):
        prelu, _ = _negative_regime("prelu", slope)
        dead[slope] = probe_step(prelu, data, x, y)[0]
    for index in range(3):
        assert dead["relu"][(index, "dead_frac")] == 1.0
        assert dead["leaky_relu"][(index, "dead_frac")] == 0.0  # passes 1 % of the gradient
        assert dead[0.25][(index, "dead_frac")] == 0.0
        assert dead[0.04][(index, "dead_frac")] == 0.0
        assert dead[0.5 * DEAD_SLOPE_ABSOLUTE][(index, "dead_frac")] == 1.0
        assert dead[-0.5 * DEAD_SLOPE_ABSOLUTE][(index, "dead_frac")] == 1.0


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_largest_slope_equals_the_derivative_at_every_example(name):
    torch.manual_seed(1)
    activation = make_activation(name)
    if name == "prelu":
        with torch.no_grad():
            activation.weight.fill_(-1.7)  # a negative slope above 1 in size: the abs() matters
    z = torch.randn(300, 7) * 3
    z[:, 0] = -torch.rand(300) - 0.1  # one unit wholly negative, one wholly positive
    z[:, 1] = torch.rand(300) + 0.1
    expected = activation.derivative(z).abs().amax(dim=0)
    torch.testing.assert_close(largest_slope(activation, z), expected, rtol=1e-6, atol=0)


def test_died_frac_counts_only_units_that_die_after_step_zero():
    model, data = _mlp("relu", width=5, n=32)
    x, y = data.x_train, data.y_train
    prober = Prober(ProbeConfig(probe_set_every=1), total_steps=3)  # the probe set at every step

    def measure(step, dead_units):
        with torch.no_grad():
            model.linears[1].bias.fill_(0.1)
            model.linears[1].bias[list(dead_units)] = -1e3
        trace = Trace()
        loss = task_loss(data, model(x, trace), y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        prober.after_backward(trace, probe_set_trace(model, x), step)
        prober.commit(step)

    measure(0, {0, 1})  # dead at initialization
    measure(1, {1, 2})  # unit 0 recovered, unit 1 still dead, unit 2 died
    measure(2, {0, 2, 3})  # unit 0 dead again: dead at step 0, so not counted as dying
    rows = {(step, q): v for step, index, _, q, v in prober.layer_rows if index == 1}
    zs = [reference_mlp(model, x, y, "relu")[0][1]]  # sanity: the units really are dead now
    assert ref_dead("relu", zs[0].detach().numpy()).tolist() == [True, False, True, True, False]
    assert rows[(0, "dead_frac")] == pytest.approx(2 / 5) and rows[(0, "died_frac")] == 0.0
    assert rows[(1, "dead_frac")] == pytest.approx(2 / 5) and rows[(1, "died_frac")] == pytest.approx(1 / 5)
    assert rows[(2, "dead_frac")] == pytest.approx(3 / 5) and rows[(2, "died_frac")] == pytest.approx(2 / 5)


def test_probe_set_forward_leaves_batch_norm_statistics_alone():
    model, data = _mlp("relu", width=5, norm="batch", n=32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trace = probe_set_trace(model, data.x_train)
    assert len(trace.layers) == 4 and trace.layers[0].act_input.shape == (32, 5)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert model.training


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_update_ratio_of_a_tiny_update_is_exact_in_float64(optimizer):
    """lr 1e-12: the update rounds away in float32 (W_new == W_old), the float64 ratio does not."""
    from gradatlas.run.config import OptimConfig
    from gradatlas.run.optim import OPTIMIZERS

    lr = 1e-12
    model, data = _mlp("tanh", width=8, n=16)
    x, y = data.x_train, data.y_train
    weights = [lin.weight for lin in [*model.linears, model.head]]
    old = [w.detach().double().numpy().copy() for w in weights]
    trace = Trace()
    loss = task_loss(data, model(x, trace), y)
    loss.backward()
    grads = [w.grad.double().numpy().copy() for w in weights]
    prober = Prober(ProbeConfig(), total_steps=1)
    prober.after_backward(trace, probe_set_trace(model, x))
    opt = OPTIMIZERS[optimizer]([p for p in model.parameters()], OptimConfig(name=optimizer, lr=lr))
    updates = opt.step(report=True)
    prober.after_update(0, updates)
    ratios = {index: v for _, index, _, q, v in prober.layer_rows if q == "update_ratio"}
    for index, (w, w0, g) in enumerate(zip(weights, old, grads)):
        assert np.array_equal(w.detach().double().numpy(), w0)  # float32 lost the update entirely
        # Reference in numpy float64: SGD steps lr * g; Adam's first step is lr * g / (|g| + eps).
        step = lr * g if optimizer == "sgd" else lr * g / (np.abs(g) + 1e-8)
        expected = np.linalg.norm(step) / np.linalg.norm(w0)
        assert 0 < expected < 1e-9
        assert ratios[index] == pytest.approx(expected, rel=1e-6)


def test_underflow_is_flagged_for_a_deep_sigmoid_net():
    """60 sigmoid layers: the first layers' float32 gradients are exactly 0 or subnormal."""
    torch.manual_seed(0)
    data = fake_dataset(n=16, input_dim=40, output_dim=10)
    model = make_model(data, ModelConfig(name="mlp", depth=60, width=64, activation="sigmoid", init="default"))
    layers, _, names = probe_step(model, data, data.x_train, data.y_train)
    trace = Trace()
    model.zero_grad(set_to_none=True)
    task_loss(data, model(data.x_train, trace), data.y_train).backward()
    tiny = torch.finfo(torch.float32).tiny
    expected = [float(bool((layer.preacts[0].grad.abs() < tiny).all())) for layer in trace.layers]
    assert [layers[(i, "underflow")] for i in range(len(names))] == expected
    assert expected[0] == 1.0 and expected[-1] == 0.0  # the input side underflows, the head does not
    assert 0 < sum(expected) < len(expected)


@pytest.mark.parametrize("activation", ["tanh", "relu", "prelu"])
def test_weight_norm_and_update_ratio_around_sgd_step(activation):
    lr = 0.3
    model, data = _mlp(activation)
    x, y = data.x_train, data.y_train
    weights = [lin.weight for lin in [*model.linears, model.head]]
    before = [w.detach().clone().double() for w in weights]
    plain = copy.deepcopy(model)
    F.cross_entropy(plain(x), y).backward()
    grads = [lin.weight.grad.double() for lin in [*plain.linears, plain.head]]
    layers, _, _ = probe_step(model, data, x, y, lr=lr)
    for index, (w, old, g) in enumerate(zip(weights, before, grads)):
        after = w.detach().double()
        assert layers[(index, "weight_norm")] == _approx(torch.linalg.norm(old).item(), rel=1e-6)
        expected = (torch.linalg.norm(after - old) / torch.linalg.norm(old)).item()
        assert expected > 0
        assert layers[(index, "update_ratio")] == _approx(expected, rel=1e-5)
        # Plain SGD: the update is lr * grad.
        assert layers[(index, "update_ratio")] == _approx(lr * torch.linalg.norm(g).item()
                                                          / torch.linalg.norm(old).item(), rel=1e-4)


def test_prelu_slope_is_recorded_per_layer():
    model, data = _mlp("prelu")
    with torch.no_grad():
        for i, act in enumerate(model.acts):
            act.weight.fill_(0.1 * (i + 1))
    layers, _, _ = probe_step(model, data, data.x_train, data.y_train)
    for i in range(3):
        assert layers[(i, "prelu_slope")] == pytest.approx(0.1 * (i + 1))


def test_layer_norm_backprop_norm_is_exact():
    model, data = _mlp("tanh", norm="layer")
    with torch.no_grad():
        for norm in model.norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    x, y = data.x_train, data.y_train
    h = x.double().requires_grad_(True)
    zs, us = [], []
    for linear, norm in zip(model.linears, model.norms):
        z = h @ linear.weight.detach().double().T + linear.bias.detach().double()
        mu, var = z.mean(dim=1, keepdim=True), z.var(dim=1, unbiased=False, keepdim=True)
        u = (z - mu) / torch.sqrt(var + norm.eps) * norm.weight.detach().double() + norm.bias.detach().double()
        h = torch.tanh(u)
        zs.append(z)
        us.append(u)
    out = h @ model.head.weight.detach().double().T + model.head.bias.detach().double()
    losses = F.cross_entropy(out, y, reduction="none")
    layers, _, _ = probe_step(model, data, x, y)
    for index, (z, u) in enumerate(zip(zs, us)):
        assert layers[(index, "backprop_norm")] == _approx(per_example_norms(losses, [z]))
        expected_sat = np.mean(1 - np.tanh(u.detach().numpy()) ** 2 < 0.1)
        assert layers[(index, "saturated_frac")] == pytest.approx(expected_sat, abs=1e-6)


def test_batch_norm_backprop_norm_follows_convention():
    model, data = _mlp("sigmoid", norm="batch")
    x, y = data.x_train, data.y_train
    h = x.double().requires_grad_(True)
    zs = []
    for linear in model.linears:
        z = h @ linear.weight.detach().double().T + linear.bias.detach().double()
        u = (z - z.mean(dim=0)) / torch.sqrt(z.var(dim=0, unbiased=False) + 1e-5)  # affine starts at 1, 0
        h = _sig(u)
        zs.append(z)
    out = h @ model.head.weight.detach().double().T + model.head.bias.detach().double()
    loss = F.cross_entropy(out, y)
    grads = torch.autograd.grad(loss, zs)
    layers, _, _ = probe_step(model, data, x, y)
    for index, g in enumerate(grads):
        assert layers[(index, "backprop_norm")] == _approx((B * g).norm(dim=1).mean().item(), rel=1e-3)


# --------------------------------------------------------------------------- ResMLP


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_resmlp_backprop_norm(activation):
    torch.manual_seed(0)
    data = fake_dataset(n=B, input_dim=IN, output_dim=OUT)
    model = make_model(data, ModelConfig(name="resmlp", depth=4, width=5, activation=activation))
    x, y = data.x_train, data.y_train
    act = REF_ACT[activation]
    d = lambda p: p.detach().double()  # noqa: E731
    h = x.double().requires_grad_(True) @ d(model.stem.weight).T + d(model.stem.bias)
    tracked, acts = [h], []
    for linear in model.linears:
        a = act(h)
        z = a @ d(linear.weight).T + d(linear.bias)
        h = h + z
        tracked.append(z)
        acts.append(a)
    out = act(h) @ d(model.head.weight).T + d(model.head.bias)
    tracked.append(out)
    losses = F.cross_entropy(out, y, reduction="none")
    layers, _, names = probe_step(model, data, x, y)
    assert [names[i] for i in sorted(names)] == ["stem", "block.1", "block.2", "block.3", "head"]
    for index, tensor in enumerate(tracked):
        assert layers[(index, "backprop_norm")] == _approx(per_example_norms(losses, [tensor]))
    for index, a in enumerate(acts, start=1):
        assert layers[(index, "act_mean")] == _approx(a.mean().item(), rel=1e-5, abs=1e-7)
        assert layers[(index, "act_std")] == _approx(a.std(correction=0).item(), rel=1e-5)
    plain = copy.deepcopy(model)
    F.cross_entropy(plain(x), y).backward()
    for index, lin in enumerate([plain.stem, *plain.linears, plain.head]):
        assert layers[(index, "weight_grad_norm")] == _approx(torch.linalg.norm(lin.weight.grad).item(), rel=1e-6)


# --------------------------------------------------------------------------- underflow


def test_tiny_gradients_do_not_underflow():
    """A 30-layer sigmoid net: first-layer gradients ~1e-27 whose float32 squares are 0."""
    torch.manual_seed(0)
    data = fake_dataset(n=16, input_dim=40, output_dim=10)
    model = make_model(data, ModelConfig(name="mlp", depth=30, width=64, activation="sigmoid", init="default"))
    trace = Trace()
    loss = task_loss(data, model(data.x_train, trace), data.y_train)
    loss.backward()
    grad = trace.layers[0].preacts[0].grad
    assert torch.count_nonzero(grad) > 0
    assert grad.pow(2).sum().item() == 0.0  # float32 squares underflow
    prober = Prober(ProbeConfig(), 1)
    prober.after_backward(trace)
    prober.commit(0)
    value = next(v for _, i, _, q, v in prober.layer_rows if i == 0 and q == "backprop_norm")
    expected = (16 * grad.double()).norm(dim=1).mean().item()
    assert value > 0
    assert value == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------- schedule


@pytest.mark.parametrize(("cfg", "total", "expected"), [
    (ProbeConfig(), 300, {0, 1, 2, 4, 8, 16, 32, 64, 100, 200, 299}),
    (ProbeConfig(), 5, {0, 1, 2, 4}),
    (ProbeConfig(), 1, {0}),
    (ProbeConfig(), 0, set()),
    (ProbeConfig(), 64, {0, 1, 2, 4, 8, 16, 32, 63}),
    (ProbeConfig(), 66, {0, 1, 2, 4, 8, 16, 32, 64, 65}),
    (ProbeConfig(dense_until=32, log_until=0, every=10), 50, set(range(32)) | {40, 49}),
    (ProbeConfig(dense_until=3, log_until=0, every=1000), 10, {0, 1, 2, 9}),
    (ProbeConfig(dense_until=0, log_until=8, every=5), 12, {0, 1, 2, 4, 5, 8, 10, 11}),
    (ProbeConfig(enabled=False), 300, set()),
])
def test_probe_schedule(cfg, total, expected):
    assert probe_schedule(cfg, total) == expected


@pytest.mark.parametrize(("cfg", "total", "expected"), [
    (ProbeConfig(), 620, {0, 500, 619}),
    (ProbeConfig(), 1200, {0, 500, 1000, 1199}),
    (ProbeConfig(), 300, {0, 299}),
    (ProbeConfig(), 1, {0}),
    (ProbeConfig(), 0, set()),
    (ProbeConfig(every=30), 620, {0, 619}),  # 500 is no probe step
    (ProbeConfig(dense_until=32, log_until=0, every=10, probe_set_every=1), 50, set(range(32)) | {40, 49}),
    (ProbeConfig(dense_until=3, log_until=0, every=1000, probe_set_every=2), 10, {0, 2, 9}),
    (ProbeConfig(enabled=False), 300, set()),
])
def test_probe_set_schedule(cfg, total, expected):
    assert probe_set_schedule(cfg, total) == expected
    assert expected <= probe_schedule(cfg, total)


def test_probe_set_quantities_are_recorded_on_their_schedule_the_rest_on_every_probe():
    model, data = _mlp("relu", n=16)
    x, y = data.x_train, data.y_train
    cfg = ProbeConfig(dense_until=5, log_until=0, every=1000, probe_set_every=2)
    prober = Prober(cfg, total_steps=7)  # probes 0..4 and 6; the probe set at 0, 2, 4 and 6
    assert sorted(prober.steps) == [0, 1, 2, 3, 4, 6]
    assert [s for s in range(7) if prober.wants_probe_set(s)] == [0, 2, 4, 6]
    for step in sorted(prober.steps):
        trace = Trace()
        model.zero_grad(set_to_none=True)
        task_loss(data, model(x, trace), y).backward()
        prober.after_backward(trace, probe_set_trace(model, x), step)
        torch.optim.SGD(model.parameters(), lr=0.1).step()
        prober.after_update(step)
    steps = {}
    for step, _, _, quantity, _ in prober.layer_rows:
        steps.setdefault(quantity, set()).add(step)
    assert steps.pop("dead_frac") == steps.pop("died_frac") == {0, 2, 4, 6}
    assert all(recorded == {0, 1, 2, 3, 4, 6} for recorded in steps.values()), steps
    expected = recorded_steps(cfg, 7)
    assert expected[(LAYERS, "dead_frac")] == {0, 2, 4, 6} and expected[(LAYERS, "backprop_norm")] == {0, 1, 2, 3, 4, 6}


def test_prober_wants_follows_schedule():
    prober = Prober(ProbeConfig(), 300)
    assert [s for s in range(300) if prober.wants(s)] == [0, 1, 2, 4, 8, 16, 32, 64, 100, 200, 299]


def test_input_sq_norm_is_each_examples_squared_input_norm_and_opt_in():
    model, data = _mlp("tanh", n=B)
    x, y = data.x_train, data.y_train
    layers, _, names = probe_step(model, data, x, y, cfg=ProbeConfig(input_norms=True))
    got = [layers[(b, "input_sq_norm")] for b in range(B)]
    assert got == pytest.approx((x.double().numpy() ** 2).sum(axis=1).tolist(), rel=1e-12)
    off, _, _ = probe_step(model, data, x, y)
    assert not any(quantity == "input_sq_norm" for _, quantity in off)
    assert recorded_steps(ProbeConfig(), 5)[(LAYERS, "input_sq_norm")] == set()
    assert recorded_steps(ProbeConfig(input_norms=True), 5)[(LAYERS, "input_sq_norm")] == {0}


def test_input_sq_norm_of_each_stack_member_is_its_own_first_batch(make_run_config):
    """Members of a stack draw their own batches (a generator seeded with the run's seed)."""
    from gradatlas.run import loop, runner
    from gradatlas.run.data import make_dataset

    overrides = ("device=cpu", "model=mlp", "model.depth=2", "model.width=8", "train.batch_size=16",
                 "train.max_steps=1", "data.n_train=64", "data.n_test=16", "probe.input_norms=true")
    cfgs = [make_run_config([*overrides, f"seed={seed}"], f"m{seed}") for seed in (0, 3)]
    models = []
    for cfg in cfgs:
        runner.seed_everything(cfg.seed)
        data = make_dataset(cfg.data)
        models.append(make_model(data, cfg.model))
    results = loop.train_stack(models, data, cfgs, torch.device("cpu"))
    for cfg, result in zip(cfgs, results):
        first = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(cfg.seed))[:16]
        want = (data.x_train[first].double() ** 2).sum(dim=1).numpy()
        rows = sorted((r[1], r[2], r[4]) for r in result.layer_rows if r[3] == "input_sq_norm")
        assert [name for _, name, _ in rows] == ["input"] * 16
        assert [value for *_, value in rows] == pytest.approx(want.tolist(), rel=1e-12)


def _reference_arc_correlations(model, points, activation="relu"):
    """Per separation s, the mean cosine of d(logit 0)/dx between points s apart: each point's
    gradient by plain autograd through the float64 hand-written forward, one point at a time."""
    grads = []
    for point in points:
        x = point.double().reshape(1, -1).requires_grad_(True)
        h = x
        for linear in model.linears:
            h = REF_ACT[activation](h @ linear.weight.detach().double().T + linear.bias.detach().double())
        out = h @ model.head.weight.detach().double().T + model.head.bias.detach().double()
        grads.append(torch.autograd.grad(out[0, 0], x)[0].reshape(-1).numpy())
    g = np.array(grads)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return {s: float(np.mean([g[i] @ g[i + s] for i in range(len(g) - s)])) for s in range(1, len(g))}


def test_input_grad_corr_matches_plain_autograd_on_an_arc():
    from gradatlas.run.probes.arc import ARC_POINTS, ARC_STEP, arc_inputs, input_gradients

    model, data = _mlp("relu", depth=3, width=7)
    x, y = data.x_train, data.y_train
    points = arc_inputs(x[0], seed=5)
    norms = points.norm(dim=1).numpy()
    assert norms == pytest.approx(np.full(ARC_POINTS, x[0].double().norm().item()), rel=1e-12)
    cos = (points @ points.T).numpy() / np.outer(norms, norms)
    assert np.arccos(np.clip(cos[0], -1, 1)) == pytest.approx(ARC_STEP * np.arange(ARC_POINTS), abs=1e-6)
    trace = Trace()
    task_loss(data, model(x, trace), y).backward()
    prober = Prober(ProbeConfig(input_grad_corr=True), total_steps=1)
    assert prober.wants_input_grads(0)
    grads = input_gradients(model, points.float())
    prober.after_backward(trace, probe_set_trace(model, x), 0, grads)
    prober.commit(0)
    got = {index: value for _, index, name, q, value in prober.layer_rows if q == "input_grad_corr"}
    want = _reference_arc_correlations(model, points.float())
    assert set(got) == set(want) == set(range(1, ARC_POINTS))
    for s, value in want.items():
        assert got[s] == pytest.approx(value, rel=1e-5, abs=1e-6), s
    assert not Prober(ProbeConfig(), total_steps=1).wants_input_grads(0)


def test_input_grad_corr_of_each_stack_member_is_its_own(make_run_config):
    from gradatlas.run import loop, runner
    from gradatlas.run.data import make_dataset
    from gradatlas.run.probes.arc import arc_inputs

    overrides = ("device=cpu", "model=mlp", "model.depth=3", "model.width=8", "model.activation=relu",
                 "model.init=he_normal", "train.batch_size=16", "train.max_steps=1", "data.n_train=64",
                 "data.n_test=16", "probe.input_grad_corr=true")
    cfgs = [make_run_config([*overrides, f"seed={seed}"], f"m{seed}") for seed in (0, 3)]
    models, wants = [], []
    for cfg in cfgs:
        runner.seed_everything(cfg.seed)
        data = make_dataset(cfg.data)
        model = make_model(data, cfg.model)
        models.append(model)
        points = arc_inputs(loop.probe_set(data.x_train, cfg.seed)[0], cfg.seed).float()
        wants.append(_reference_arc_correlations(copy.deepcopy(model), points))
    results = loop.train_stack(models, data, cfgs, torch.device("cpu"))
    for want, result in zip(wants, results):
        got = {r[1]: r[4] for r in result.layer_rows if r[3] == "input_grad_corr" and r[0] == 0}
        assert set(got) == set(want)
        for s, value in want.items():
            assert got[s] == pytest.approx(value, rel=1e-4, abs=1e-5), s


# --------------------------------------------------------------------------- the registry

# Every recorded quantity and the tests that check it against an independent reference
# ("module::test" for a test in another module, else one of this module).
REFERENCE_TESTS = {
    (LAYERS, "weight_grad_norm"): ["test_weight_grad_norm_matches_plain_backward"],
    (LAYERS, "input_grad_corr"): ["test_input_grad_corr_matches_plain_autograd_on_an_arc",
                                  "test_input_grad_corr_of_each_stack_member_is_its_own"],
    (LAYERS, "input_sq_norm"): ["test_input_sq_norm_is_each_examples_squared_input_norm_and_opt_in",
                                "test_input_sq_norm_of_each_stack_member_is_its_own_first_batch"],
    (LAYERS, "backprop_norm"): ["test_mlp_backprop_norm_per_layer", "test_resmlp_backprop_norm",
                                "test_layer_norm_backprop_norm_is_exact"],
    (LAYERS, "act_mean"): ["test_activation_statistics_match_numpy"],
    (LAYERS, "act_std"): ["test_activation_statistics_match_numpy"],
    (LAYERS, "saturated_frac"): ["test_saturated_frac_matches_formula", "test_saturation_threshold_is_configurable"],
    (LAYERS, "weight_norm"): ["test_weight_norm_and_update_ratio_around_sgd_step"],
    (LAYERS, "prelu_slope"): ["test_prelu_slope_is_recorded_per_layer"],
    (LAYERS, "underflow"): ["test_underflow_is_flagged_for_a_deep_sigmoid_net"],
    (LAYERS, "dead_frac"): ["test_dead_frac_counts_units_dead_for_every_example",
                            "test_rectifier_units_in_the_negative_regime_are_dead_only_when_they_pass_almost_no_gradient"],
    (LAYERS, "died_frac"): ["test_died_frac_counts_only_units_that_die_after_step_zero"],
    (LAYERS, "jacobian_sv2"): ["test_probes_jacobian::test_jacobian_spectrum_matches_finite_differences_and_numpy_svd",
                               "test_probes_jacobian::test_orthogonal_linear_net_is_an_isometry"],
    (LAYERS, "update_ratio"): ["test_update_ratio_of_a_tiny_update_is_exact_in_float64",
                               "test_weight_norm_and_update_ratio_around_sgd_step"],
    (LAYERS, "log_gain_mean"): ["test_backward_gain::test_backward_gain_matches_plain_autograd"],
    (LAYERS, "log_gain_var"): ["test_backward_gain::test_backward_gain_matches_plain_autograd"],
    (LAYERS, "gain_mean"): ["test_backward_gain::test_backward_gain_matches_plain_autograd"],
    (TIMESTEPS, "hidden_grad_norm"): ["test_probes_recurrent::test_hidden_grad_norm_every_t",
                                      "test_probes_recurrent::test_regression_hidden_grad_norm"],
    (TIMESTEPS, "underflow"): ["test_probes_recurrent::test_hidden_underflow_flags_subnormal_gradients"],
    (TIMESTEPS, "hidden_norm"): ["test_probes_recurrent::test_hidden_grad_norm_every_t"],
    (TIMESTEPS, "saturated_frac"): ["test_probes_recurrent::test_gate_saturation_formula_on_known_values",
                                    "test_probes_recurrent::test_recurrent_saturation_and_gates"],
    (TIMESTEPS, "gate_mean"): ["test_probes_recurrent::test_gate_saturation_formula_on_known_values",
                               "test_probes_recurrent::test_recurrent_saturation_and_gates"],
}


def test_every_registered_quantity_has_a_reference_test():
    assert {(cls.table, cls.name) for cls in registered()} == set(REFERENCE_TESTS)
    for tests in REFERENCE_TESTS.values():
        for test in tests:
            module, _, name = test.rpartition("::")
            where = vars(importlib.import_module(module)) if module else globals()
            assert callable(where.get(name)), test


def test_every_quantity_names_a_known_schedule():
    assert all(cls.steps in SCHEDULES for cls in registered())


def test_a_second_quantity_of_one_name_is_refused():
    class Again(LayerQuantity):
        name = "backprop_norm"

    with pytest.raises(TypeError, match="two quantities named 'backprop_norm'"):
        register(Again)


def test_rows_of_a_probe_step_come_in_registry_order():
    """Layer by layer in each group, the quantities in the order ``registered()`` gives."""
    model, data = _mlp("prelu")
    prober = Prober(ProbeConfig(), total_steps=1)
    trace = Trace()
    task_loss(data, model(data.x_train, trace), data.y_train).backward()
    prober.after_backward(trace, probe_set_trace(model, data.x_train))
    prober.after_update(0)
    rows = [(index, q) for _, index, _, q, _ in prober.layer_rows]
    layer_quantities = [cls for cls in registered() if cls.table == LAYERS]
    expected = [(index, cls.name) for group in sorted({cls.group for cls in layer_quantities}) for index in range(4)
                for cls in layer_quantities if cls.group == group and (index, cls.name) in rows]
    assert rows == expected
    # 3 hidden layers: 8 batch, 2 probe-set and 1 update quantity; the head: 4 batch ones and the update ratio.
    assert len(rows) == 3 * (8 + 2 + 1) + 4 + 1

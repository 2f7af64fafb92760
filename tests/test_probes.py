"""Probes against independent references: hand-written forward passes in float64, per-example
autograd, numpy formulas for the activation statistics, and torch's own recurrent cells.

Convention under test (probes.py): a backpropagated norm is the norm of the gradient of the
*per-example* loss, averaged over the batch. The references compute that directly from
per-example losses (``reduction="none"``): summing them and differentiating gives, in row b,
the gradient of example b's own loss, because examples do not interact without batch norm.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import fake_dataset

from gradatlas.run.activations import ACTIVATIONS, make_activation
from gradatlas.run.config import ModelConfig, ProbeConfig
from gradatlas.run.loop import task_loss
from gradatlas.run.models import Trace, make_model
from gradatlas.run.probes import (
    DEAD_SLOPE_SHARE,
    Prober,
    gate_statistics,
    largest_slope,
    probe_schedule,
    probe_set_trace,
)

B, IN, OUT = 6, 4, 3


def _sig(z):
    return 1.0 / (1.0 + torch.exp(-z))


# Hand-written activations (float64 references, independent of gradatlas.run.activations).
REF_ACT = {
    "linear": lambda z: z,
    "sigmoid": _sig,
    "tanh": lambda z: (torch.exp(z) - torch.exp(-z)) / (torch.exp(z) + torch.exp(-z)),
    "relu": lambda z: torch.where(z > 0, z, torch.zeros_like(z)),
    "leaky_relu": lambda z: torch.where(z > 0, z, 0.01 * z),
    "prelu": lambda z: torch.where(z > 0, z, 0.25 * z),
    "elu": lambda z: torch.where(z > 0, z, torch.exp(z) - 1),
    "selu": lambda z: 1.0507009873554805 * torch.where(z > 0, z, 1.6732632423543772 * (torch.exp(z) - 1)),
    "silu": lambda z: z * _sig(z),
    "gelu": lambda z: z * 0.5 * (1 + torch.erf(z / math.sqrt(2))),
}


# numpy derivatives and their suprema, for the saturation reference.
def _np_sig(z):
    return 1 / (1 + np.exp(-z))


REF_DERIV = {
    "sigmoid": (lambda z: _np_sig(z) * (1 - _np_sig(z)), 0.25),
    "tanh": (lambda z: 1 - np.tanh(z) ** 2, 1.0),
    "relu": (lambda z: (z > 0).astype(float), 1.0),
}


def ref_dead(activation, z):
    """Per unit (last dim), whether |phi'(z)| < DEAD_SLOPE_SHARE * sup|phi'| for every row of z:
    phi' by autograd of the hand-written ``REF_ACT``, its supremum by a dense grid."""
    act = REF_ACT[activation]
    grid = torch.linspace(-12, 12, 240001, dtype=torch.float64, requires_grad=True)
    sup = torch.autograd.grad(act(grid).sum(), grid)[0].abs().max().item()
    z = torch.as_tensor(np.asarray(z), dtype=torch.float64).reshape(-1, np.shape(z)[-1]).requires_grad_(True)
    slope = torch.autograd.grad(act(z).sum(), z)[0].abs()
    return (slope < DEAD_SLOPE_SHARE * sup).all(dim=0).numpy()


def probe_step(model, data, x, y, lr=None, cfg=None):
    """One traced forward/backward, measured by a ``Prober`` (dead units on ``x`` as the probe
    set); optionally an SGD step.

    Returns ``(layers, timesteps, names)``: ``layers[(index, quantity)]``,
    ``timesteps[(quantity, t)]`` and ``names[index]``.
    """
    trace = Trace()
    out = model(x, trace)
    loss = task_loss(data, out, y)
    model.zero_grad(set_to_none=True)
    loss.backward()
    prober = Prober(cfg or ProbeConfig(), total_steps=1)
    prober.after_backward(trace, probe_set_trace(model, x))
    if lr is None:
        prober.commit(0)
    else:
        torch.optim.SGD(model.parameters(), lr=lr).step()
        prober.after_update(0)
    layers = {(index, quantity): value for _, index, _, quantity, value in prober.layer_rows}
    names = {index: name for _, index, name, _, _ in prober.layer_rows}
    timesteps = {(quantity, t): value for _, t, quantity, value in prober.timestep_rows}
    return layers, timesteps, names


def per_example_norms(losses, tensors):
    """Per-example gradient norm over ``tensors`` (batch in dim 0), batch mean."""
    grads = torch.autograd.grad(losses.sum(), tensors, retain_graph=True)
    squares = sum(g.reshape(g.shape[0], -1).pow(2).sum(dim=1) for g in grads)
    return squares.sqrt().mean().item()


def _approx(value, rel=1e-4, abs=1e-12):
    return pytest.approx(value, rel=rel, abs=abs)


# --------------------------------------------------------------------------- MLP


def reference_mlp(model, x, y, activation):
    """Float64 forward of ``model``'s weights (no norm layers), with per-example losses."""
    act = REF_ACT[activation]
    h = x.double().requires_grad_(True)  # so that the graph tracks every z
    zs, hs = [], []
    for linear in model.linears:
        z = h @ linear.weight.detach().double().T + linear.bias.detach().double()
        h = act(z)
        zs.append(z)
        hs.append(h)
    out = h @ model.head.weight.detach().double().T + model.head.bias.detach().double()
    return zs, hs, out, F.cross_entropy(out, y, reduction="none")


def _mlp(activation, depth=3, width=5, init="xavier_normal", gain=1.0, norm="none", seed=0, n=B):
    torch.manual_seed(seed)
    data = fake_dataset(n=n, input_dim=IN, output_dim=OUT, seed=seed)
    cfg = ModelConfig(name="mlp", depth=depth, width=width, activation=activation, init=init,
                      init_gain=gain, norm=norm, bias_init=0.1)
    return make_model(data, cfg), data


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


def test_dead_units_catch_leaky_relu_in_negative_regime_but_not_prelu():
    leaky, data = _negative_regime("leaky_relu", 0.01)
    prelu, _ = _negative_regime("prelu", 0.25)
    prelu.load_state_dict({k: v for k, v in leaky.state_dict().items()}, strict=False)  # same weights
    x, y = data.x_train, data.y_train
    with torch.no_grad():
        assert all((lin.weight == other.weight).all() for lin, other in zip(leaky.linears, prelu.linears))
        h = leaky.acts[0](leaky.linears[0](x))
    assert (h != 0).all()  # leaky units never output exactly 0: "output == 0" could not fail them
    dead_leaky, _, _ = probe_step(leaky, data, x, y)
    dead_prelu, _, _ = probe_step(prelu, data, x, y)
    for index in range(3):
        assert dead_leaky[(index, "dead_frac")] == 1.0
        assert dead_prelu[(index, "dead_frac")] == 0.0


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
    prober = Prober(ProbeConfig(), total_steps=3)

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


def test_underflow_counts_timesteps_and_layers():
    model, data = _recurrent("rnn", "tanh", 1)
    _, timesteps, _ = probe_step(model, data, data.x_train, data.y_train)
    assert [timesteps[("underflow", t)] for t in range(1, T + 1)] == [0.0] * T
    prober = Prober(ProbeConfig(), 1)
    prober.layer_rows = [(0, 0, "a", "underflow", 1.0), (0, 1, "b", "underflow", 0.0), (0, 0, "a", "dead_frac", 1.0)]
    prober.timestep_rows = [(0, 1, "underflow", 1.0), (0, 2, "underflow", 1.0), (0, 1, "hidden_norm", 1.0)]
    assert prober.underflow_probes == 3


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


# --------------------------------------------------------------------------- recurrent

T = 5


def reference_recurrent_layer(kind, cell, x, nonlinearity=torch.tanh):
    """Unroll one layer from the textbook equations (PyTorch gate layout), in float64.

    Returns the hidden states h_1..h_T, the pre-activations that feed the cell's sigmoid (or
    the vanilla RNN's phi) per step, and the gate values per step.
    """
    d = lambda p: p.detach().double()  # noqa: E731
    w_ih, w_hh, b_ih, b_hh = d(cell.weight_ih), d(cell.weight_hh), d(cell.bias_ih), d(cell.bias_hh)
    batch, length, _ = x.shape
    hidden = w_hh.shape[1]
    h = torch.zeros(batch, hidden, dtype=torch.float64)
    c = torch.zeros_like(h)
    hs, pre, gates = [], [], {}
    for t in range(length):
        gi = x[:, t] @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        if kind == "rnn":
            a = gi + gh
            h = nonlinearity(a)
            pre.append(a)
        elif kind == "gru":
            ir, iz, i_n = gi.split(hidden, dim=1)
            hr, hz, hn = gh.split(hidden, dim=1)
            r, z = _sig(ir + hr), _sig(iz + hz)
            n = torch.tanh(i_n + r * hn)
            h = (1 - z) * n + z * h
            pre.append(torch.cat([ir + hr, iz + hz], dim=1))
            for name, value in (("reset", r), ("update", z)):
                gates.setdefault(name, []).append(value)
        else:
            ai, af, ag, ao = (gi + gh).split(hidden, dim=1)
            i, f, o = _sig(ai), _sig(af), _sig(ao)
            c = f * c + i * torch.tanh(ag)
            h = o * torch.tanh(c)
            pre.append(torch.cat([ai, af, ao], dim=1))
            for name, value in (("input", i), ("forget", f), ("output", o)):
                gates.setdefault(name, []).append(value)
        hs.append(h)
    return hs, pre, gates


def reference_recurrent(kind, model, x, nonlinearity=torch.tanh):
    inputs = x.double().requires_grad_(True)  # so that the graph tracks every h_t
    layers = []
    for cell in model.cells:
        hs, pre, gates = reference_recurrent_layer(kind, cell, inputs, nonlinearity)
        layers.append((hs, pre, gates))
        inputs = torch.stack(hs, dim=1)
    return layers, inputs


RECURRENT_CASES = [("rnn", "tanh", 1), ("rnn", "relu", 1), ("gru", "tanh", 1), ("lstm", "tanh", 1),
                   ("lstm", "tanh", 2), ("gru", "tanh", 2)]


def _recurrent(kind, activation, depth, task="classification", readout_steps=0, width=6, seed=0):
    torch.manual_seed(seed)
    data = fake_dataset(n=B, input_dim=3, output_dim=OUT if task == "classification" else 1, length=T,
                        task=task, readout_steps=readout_steps, seed=seed)
    cfg = ModelConfig(name=kind, depth=depth, width=width, activation=activation, init="orthogonal",
                      init_gain=1.2 if activation == "tanh" else 0.9, bias_init=0.1)
    return make_model(data, cfg), data


@pytest.mark.parametrize(("kind", "activation", "depth"), RECURRENT_CASES)
def test_hidden_grad_norm_every_t(kind, activation, depth):
    model, data = _recurrent(kind, activation, depth)
    x, y = data.x_train, data.y_train
    nonlinearity = torch.tanh if activation == "tanh" else torch.relu
    ref_layers, top = reference_recurrent(kind, model, x, nonlinearity)
    d = lambda p: p.detach().double()  # noqa: E731
    out = top[:, -1] @ d(model.head.weight).T + d(model.head.bias)
    losses = F.cross_entropy(out, y, reduction="none")
    layers, timesteps, names = probe_step(model, data, x, y)
    assert [names[i] for i in sorted(names)] == [f"{kind}.{i}" for i in range(depth)] + ["head"]
    hs_top = ref_layers[-1][0]
    for t in range(1, T + 1):
        expected = per_example_norms(losses, [hs_top[t - 1]])
        assert expected > 0
        assert timesteps[("hidden_grad_norm", t)] == _approx(expected)
        hidden_norm = hs_top[t - 1].norm(dim=1).mean().item()
        assert timesteps[("hidden_norm", t)] == _approx(hidden_norm, rel=1e-5)
    assert ("hidden_grad_norm", 0) not in timesteps and ("hidden_grad_norm", T + 1) not in timesteps
    # Layer backprop_norm: the per-example norm over all h_1..h_T of that layer together.
    for index, (hs, _, _) in enumerate(ref_layers):
        assert layers[(index, "backprop_norm")] == _approx(per_example_norms(losses, hs))
    # Weight gradients of both matrices together, against a plain backward.
    plain = copy.deepcopy(model)
    F.cross_entropy(plain(x), y).backward()
    for index, cell in enumerate(plain.cells):
        expected = math.sqrt(cell.weight_ih.grad.pow(2).sum().item() + cell.weight_hh.grad.pow(2).sum().item())
        assert layers[(index, "weight_grad_norm")] == _approx(expected, rel=1e-5)


@pytest.mark.parametrize(("kind", "activation", "depth"), RECURRENT_CASES)
def test_recurrent_saturation_and_gates(kind, activation, depth):
    model, data = _recurrent(kind, activation, depth)
    x, y = data.x_train, data.y_train
    nonlinearity = torch.tanh if activation == "tanh" else torch.relu
    ref_layers, _ = reference_recurrent(kind, model, x, nonlinearity)
    layers, timesteps, _ = probe_step(model, data, x, y)
    for index, (hs, pre, _) in enumerate(ref_layers):
        a = torch.stack(pre, dim=1).detach().numpy()
        if kind == "rnn" and activation == "tanh":
            expected = np.mean(1 - np.tanh(a) ** 2 < 0.1)
        elif kind == "rnn":
            expected = np.mean(a <= 0)
        else:  # gated cells: saturation of their sigmoid gates
            expected = np.mean(_np_sig(a) * (1 - _np_sig(a)) < 0.1 * 0.25)
        assert layers[(index, "saturated_frac")] == pytest.approx(expected, abs=1e-6)
        h = torch.stack(hs, dim=1).detach().numpy()
        assert layers[(index, "act_mean")] == _approx(h.mean(), rel=1e-5, abs=1e-7)
        assert layers[(index, "act_std")] == _approx(h.std(), rel=1e-5)
        if kind == "rnn":
            assert layers[(index, "dead_frac")] == np.mean(ref_dead(activation, a))
        else:  # gated cells: units are their sigmoid gates, dead where sigma' < share / 4 throughout
            dead = np.all((_np_sig(a) * (1 - _np_sig(a)) < DEAD_SLOPE_SHARE * 0.25).reshape(-1, a.shape[-1]), axis=0)
            assert layers[(index, "dead_frac")] == np.mean(dead)
    gates = ref_layers[-1][2]
    expected_names = {"rnn": set(), "gru": {"reset", "update"}, "lstm": {"input", "forget", "output"}}[kind]
    assert set(gates) == expected_names
    recorded = {q.split(".", 1)[1] for q, _ in timesteps if q.startswith("saturated_frac.")}
    assert recorded == expected_names
    for gate, values in gates.items():
        for t, g in enumerate(values, start=1):
            g = g.detach().numpy()
            assert timesteps[(f"saturated_frac.{gate}", t)] == pytest.approx(np.mean(g * (1 - g) < 0.025), abs=1e-6)
            assert timesteps[(f"gate_mean.{gate}", t)] == _approx(g.mean(), rel=1e-5)


def test_gate_saturation_formula_on_known_values():
    # sigma' = g (1 - g) < 0.1 * 1/4 <=> g < 0.0256... or g > 0.9743...
    values = torch.tensor([[[0.5, 0.02, 0.99, 0.97]], [[0.001, 0.5, 0.5, 0.5]]])  # (T=2, B=1, H=4)
    trace = Trace(gates={"forget": list(values)})
    stats = gate_statistics(trace, 0.1)
    torch.testing.assert_close(stats["saturated_frac.forget"], torch.tensor([0.5, 0.25]))
    torch.testing.assert_close(stats["gate_mean.forget"], values.mean(dim=(1, 2)))


def test_copy_task_readout_uses_per_example_mean_over_readout_steps():
    model, data = _recurrent("lstm", "tanh", 1, readout_steps=2)
    x, y = data.x_train, data.y_train
    ref_layers, top = reference_recurrent("lstm", model, x)
    d = lambda p: p.detach().double()  # noqa: E731
    out = top[:, -2:] @ d(model.head.weight).T + d(model.head.bias)  # (B, K, C)
    losses = F.cross_entropy(out.reshape(-1, OUT), y.reshape(-1), reduction="none").reshape(B, 2).mean(dim=1)
    _, timesteps, _ = probe_step(model, data, x, y)
    for t in range(1, T + 1):
        assert timesteps[("hidden_grad_norm", t)] == _approx(per_example_norms(losses, [ref_layers[0][0][t - 1]]))


def test_regression_hidden_grad_norm():
    model, data = _recurrent("rnn", "tanh", 1, task="regression")
    x, y = data.x_train, data.y_train
    ref_layers, top = reference_recurrent("rnn", model, x)
    d = lambda p: p.detach().double()  # noqa: E731
    out = top[:, -1] @ d(model.head.weight).T + d(model.head.bias)
    losses = (out - y.double()).pow(2).sum(dim=1)
    _, timesteps, _ = probe_step(model, data, x, y)
    for t in range(1, T + 1):
        assert timesteps[("hidden_grad_norm", t)] == _approx(per_example_norms(losses, [ref_layers[0][0][t - 1]]))


@pytest.mark.parametrize(("kind", "torch_cell"), [
    ("rnn-tanh", lambda i, h: torch.nn.RNNCell(i, h, nonlinearity="tanh")),
    ("rnn-relu", lambda i, h: torch.nn.RNNCell(i, h, nonlinearity="relu")),
    ("gru", torch.nn.GRUCell),
    ("lstm", torch.nn.LSTMCell),
])
def test_cells_match_torch(kind, torch_cell):
    name, _, activation = kind.partition("-")
    model, data = _recurrent(name, activation or "tanh", 1, width=7, seed=3)
    with torch.no_grad():  # random biases, so the test does not rely on zero ones
        for p in model.cells[0].parameters():
            p.add_(0.3 * torch.randn_like(p))
    ours = model.cells[0]
    theirs = torch_cell(3, 7)
    with torch.no_grad():
        for pname in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(theirs, pname).copy_(getattr(ours, pname))
    x = data.x_train
    trace = Trace()
    model(x, trace)
    h = torch.zeros(B, 7)
    state = (h, torch.zeros(B, 7)) if name == "lstm" else h
    for t in range(T):
        state = theirs(x[:, t], state)
        expected = state[0] if name == "lstm" else state
        torch.testing.assert_close(trace.hidden[t], expected, rtol=1e-5, atol=1e-6)


def test_lstm_matches_torch_lstm_module_two_layers():
    model, data = _recurrent("lstm", "tanh", 2, width=7, seed=4)
    reference = torch.nn.LSTM(3, 7, num_layers=2, batch_first=True)
    with torch.no_grad():
        for layer, cell in enumerate(model.cells):
            for pname in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(reference, f"{pname}_l{layer}").copy_(getattr(cell, pname))
    expected, _ = reference(data.x_train)
    trace = Trace()
    out = model(data.x_train, trace)
    torch.testing.assert_close(torch.stack(trace.hidden, dim=1), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, model.head(expected[:, -1]), rtol=1e-5, atol=1e-6)


def test_untraced_forward_equals_traced_forward():
    for model, data in (_mlp("tanh"), _recurrent("gru", "tanh", 2)):
        torch.testing.assert_close(model(data.x_train), model(data.x_train, Trace()))


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


def test_prober_wants_follows_schedule():
    prober = Prober(ProbeConfig(), 300)
    assert [s for s in range(300) if prober.wants(s)] == [0, 1, 2, 4, 8, 16, 32, 64, 100, 200, 299]

"""Probes of recurrent models against float64 unrolls of the textbook cell equations, torch's
own cells, and closed forms; the time-step quantities (hidden_grad_norm, hidden_norm, underflow,
the gate statistics). Conventions: see probe_references."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from probe_references import (
    OUT,
    RECURRENT_CASES,
    B,
    T,
    _approx,
    _mlp,
    _np_sig,
    _recurrent,
    per_example_norms,
    probe_step,
    ref_dead,
    reference_recurrent,
)

from gradatlas.run.config import ProbeConfig
from gradatlas.run.loop import task_loss
from gradatlas.run.models import Trace
from gradatlas.run.probes import DEAD_SLOPE_SHARE, Prober
from gradatlas.run.probes.quantities.gate_mean import GateMean
from gradatlas.run.probes.quantities.gate_saturated_frac import GateSaturatedFrac

pytestmark = pytest.mark.unit


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
    torch.testing.assert_close(GateSaturatedFrac(0.1).measure_gate(values), torch.tensor([0.5, 0.25]))
    means = GateMean().measure_gate(values).tolist()
    assert means == pytest.approx([np.mean([0.5, 0.02, 0.99, 0.97]), np.mean([0.001, 0.5, 0.5, 0.5])], rel=1e-6)
    # The same through a Prober, with the configured threshold (0.5: sigma' < 1/8, g < 0.146 or > 0.854).
    hidden = [torch.zeros(1, 4, requires_grad=True) for _ in range(2)]
    prober = Prober(ProbeConfig(saturation=0.5), total_steps=1)
    prober.after_backward(Trace(hidden=hidden, gates={"forget": list(values)}))
    prober.commit(0)
    rows = {(q, t): v for _, t, q, v in prober.timestep_rows}
    assert [rows[("saturated_frac.forget", t)] for t in (1, 2)] == [0.75, 0.25]


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


def test_underflow_counts_timesteps_and_layers():
    model, data = _recurrent("rnn", "tanh", 1)
    _, timesteps, _ = probe_step(model, data, data.x_train, data.y_train)
    assert [timesteps[("underflow", t)] for t in range(1, T + 1)] == [0.0] * T
    prober = Prober(ProbeConfig(), 1)
    prober.layer_rows = [(0, 0, "a", "underflow", 1.0), (0, 1, "b", "underflow", 0.0), (0, 0, "a", "dead_frac", 1.0)]
    prober.timestep_rows = [(0, 1, "underflow", 1.0), (0, 2, "underflow", 1.0), (0, 1, "hidden_norm", 1.0)]
    assert prober.underflow_probes == 3


def test_hidden_underflow_flags_subnormal_gradients():
    """Closed form: dLoss/dh_t set by hand, subnormal (1e-40), exactly 0, missing, or normal."""
    hidden = [torch.zeros(3, 4, requires_grad=True) for _ in range(4)]
    hidden[0].grad = torch.full((3, 4), 1e-40)  # subnormal in float32
    hidden[1].grad = torch.zeros(3, 4)
    hidden[3].grad = torch.full((3, 4), 1e-40)
    hidden[3].grad[2, 1] = 2e-38  # one normal entry: not underflowed
    prober = Prober(ProbeConfig(), total_steps=1)
    prober.after_backward(Trace(hidden=hidden))
    prober.commit(0)
    assert [v for _, _, q, v in prober.timestep_rows if q == "underflow"] == [1.0, 1.0, 1.0, 0.0]
    assert prober.underflow_probes == 3


def test_probe_steps_share_nothing_between_probers():
    """The squares a probe step shares live in its ProbeStep: two Probers measuring two
    models in turn record what each records alone."""
    (a, data_a), (b, data_b) = _recurrent("rnn", "tanh", 1, seed=1), _recurrent("gru", "tanh", 2, seed=2)
    alone = [probe_step(m, d, d.x_train, d.y_train)[1] for m, d in ((a, data_a), (b, data_b))]
    probers, traces = [Prober(ProbeConfig(), 1), Prober(ProbeConfig(), 1)], []
    for model, data in ((a, data_a), (b, data_b)):
        trace = Trace()
        model.zero_grad(set_to_none=True)
        task_loss(data, model(data.x_train, trace), data.y_train).backward()
        traces.append(trace)
    for prober, trace in zip(probers, traces):
        prober.after_backward(trace, trace)
    for prober in probers:
        prober.commit(0)
    for prober, expected in zip(probers, alone):
        assert {(q, t): v for _, t, q, v in prober.timestep_rows} == expected

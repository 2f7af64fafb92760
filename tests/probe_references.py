"""References for the probe tests: hand-written activations and forward passes in float64,
per-example autograd norms, and ``probe_step``, one probe step measured by a ``Prober``.

Convention under test (gradatlas.run.probes): a backpropagated norm is the norm of the gradient of the
*per-example* loss, averaged over the batch. The references compute that directly from
per-example losses (``reduction="none"``): summing them and differentiating gives, in row b,
the gradient of example b's own loss, because examples do not interact without batch norm.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import fake_dataset

from gradatlas.run.config import ModelConfig, ProbeConfig
from gradatlas.run.loop import task_loss
from gradatlas.run.models import Trace, make_model
from gradatlas.run.probes import DEAD_SLOPE_ABSOLUTE, DEAD_SLOPE_SHARE, Prober, probe_set_trace

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


# The rectifiers with a linear negative side: dead below an absolute slope (the stated rule).
ABSOLUTE_DEAD = frozenset({"relu", "leaky_relu", "prelu"})


def ref_dead(activation, z):
    """Per unit (last dim), whether |phi'(z)| < the dead slope for every row of z: phi' by
    autograd of the hand-written ``REF_ACT``; the dead slope DEAD_SLOPE_ABSOLUTE for
    ``ABSOLUTE_DEAD``, else DEAD_SLOPE_SHARE * sup|phi'| with the supremum from a dense grid."""
    act = REF_ACT[activation]
    grid = torch.linspace(-12, 12, 240001, dtype=torch.float64, requires_grad=True)
    sup = torch.autograd.grad(act(grid).sum(), grid)[0].abs().max().item()
    z = torch.as_tensor(np.asarray(z), dtype=torch.float64).reshape(-1, np.shape(z)[-1]).requires_grad_(True)
    slope = torch.autograd.grad(act(z).sum(), z)[0].abs()
    threshold = DEAD_SLOPE_ABSOLUTE if activation in ABSOLUTE_DEAD else DEAD_SLOPE_SHARE * sup
    return (slope < threshold).all(dim=0).numpy()


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

"""The backward-gain quantities and the MLP of unequal widths they are studied on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import fake_dataset
from probe_references import IN, OUT, _mlp, probe_step, reference_mlp

from gradatlas.run.config import ConfigError, ModelConfig, ProbeConfig, RunConfig, fingerprint
from gradatlas.run.models import make_model

pytestmark = pytest.mark.unit

GAIN_QUANTITIES = ("log_gain_mean", "log_gain_var", "gain_mean")


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_backward_gain_matches_plain_autograd(activation):
    model, data = _mlp(activation, depth=3, width=6, init="he_normal")
    x, y = data.x_train, data.y_train
    zs, _, out, losses = reference_mlp(model, x, y, activation)
    # Per-example gradients of each example's own loss (no batch norm: examples do not mix).
    grads = torch.autograd.grad(losses.sum(), [*zs, out])
    top = grads[-1].pow(2).sum(dim=1)
    layers, _, _ = probe_step(model, data, x, y, cfg=ProbeConfig(backward_gain=True))
    for index, grad in enumerate(grads[:-1]):
        ratio = (grad.pow(2).sum(dim=1) / top).numpy()
        assert layers[(index, "log_gain_mean")] == pytest.approx(np.log(ratio).mean(), rel=1e-4, abs=1e-6)
        assert layers[(index, "log_gain_var")] == pytest.approx(np.log(ratio).var(), rel=1e-4, abs=1e-9)
        assert layers[(index, "gain_mean")] == pytest.approx(ratio.mean(), rel=1e-4)
    assert not any((3, name) in layers for name in GAIN_QUANTITIES)  # the head has none


def test_backward_gain_is_off_by_default():
    model, data = _mlp("relu")
    layers, _, _ = probe_step(model, data, data.x_train, data.y_train)
    assert not any(name in GAIN_QUANTITIES for _, name in layers)


def test_width_alt_alternates_hidden_widths():
    torch.manual_seed(0)
    data = fake_dataset(n=8, input_dim=IN, output_dim=OUT, seed=0)
    model = make_model(data, ModelConfig(depth=5, width=4, width_alt=7))
    assert [tuple(lin.weight.shape) for lin in model.linears] == [(4, IN), (7, 4), (4, 7), (7, 4), (4, 7)]
    assert tuple(model.head.weight.shape) == (OUT, 4)
    assert model(data.x_train).shape == (8, OUT)


def test_width_alt_is_validated():
    with pytest.raises(ConfigError, match="model.width_alt must be >= 1"):
        ModelConfig(width_alt=0)
    with pytest.raises(ConfigError, match="only supported for model=mlp"):
        ModelConfig(name="resmlp", width_alt=8)


def test_keys_at_their_earlier_value_leave_the_fingerprint_as_it_was():
    # The default config's fingerprint at the session-start commit (dc5f990), before width_alt,
    # bias_std, backward_gain, jacobian_inputs and the opt-in switches existed.
    earlier = "969af831b707b8d8"
    assert fingerprint(RunConfig()) == earlier
    assert fingerprint(RunConfig(model=ModelConfig(width_alt=64))) != earlier
    assert fingerprint(RunConfig(probe=ProbeConfig(backward_gain=True))) != earlier

"""The member dimension (``gradatlas.run.stacking``): a stack is the members' own model class
with their parameters stacked in order, and each member-dimension layer computes, per member,
what PyTorch's own module computes on that member alone."""

from __future__ import annotations

import pytest
import torch
from conftest import fake_dataset

from gradatlas.run import stacking
from gradatlas.run.activations import PReLU, Tanh
from gradatlas.run.config import ModelConfig
from gradatlas.run.models import make_model
from gradatlas.run.trace import Trace

pytestmark = pytest.mark.unit

MEMBERS = 3
ARCHITECTURES = {
    "mlp-prelu-batch": ModelConfig(name="mlp", depth=3, width=6, activation="prelu", norm="batch"),
    "mlp-tanh-layer": ModelConfig(name="mlp", depth=3, width=6, activation="tanh", norm="layer"),
    "resmlp-relu-batch": ModelConfig(name="resmlp", depth=3, width=6, activation="relu", norm="batch"),
    "rnn-relu": ModelConfig(name="rnn", depth=2, width=6, activation="relu"),
    "gru": ModelConfig(name="gru", depth=2, width=6),
    "lstm": ModelConfig(name="lstm", depth=2, width=6),
}


def _members(arch: str):
    cfg = ARCHITECTURES[arch]
    data = fake_dataset(n=10, input_dim=4, length=5 if cfg.name in ("rnn", "gru", "lstm") else None)
    models = []
    for seed in range(MEMBERS):
        torch.manual_seed(seed)
        models.append(make_model(data, cfg))
    return data, models


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_a_stack_is_the_members_class_with_their_parameters_stacked_in_order(arch):
    _, models = _members(arch)
    stack = stacking.stack_models(models)
    assert type(stack) is type(models[0])
    # The order matters: the gradient norm and the optimizer run over the parameters in it.
    assert [n for n, _ in stack.named_parameters()] == [n for n, _ in models[0].named_parameters()]
    assert [n for n, _ in stack.named_buffers()] == [n for n, _ in models[0].named_buffers()]
    for name, p in stack.named_parameters():
        assert isinstance(p, torch.nn.Parameter) and p.shape[0] == MEMBERS
        for k, model in enumerate(models):
            assert torch.equal(p[k], model.get_parameter(name)), (name, k)
    for name, b in stack.named_buffers():
        for k, model in enumerate(models):
            assert torch.equal(b[k], model.get_buffer(name)), (name, k)
    assert not torch.equal(models[0].head.weight, models[1].head.weight)
    assert stacking.member_count(stack) == MEMBERS


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_each_member_of_a_stack_computes_its_model_alone(arch):
    data, models = _members(arch)
    stack = stacking.stack_models(models)
    x = torch.stack([data.x_train + k for k in range(MEMBERS)])
    trace = Trace()
    out = stack(x, trace)
    for k, model in enumerate(models):
        alone = Trace()
        torch.testing.assert_close(out[k], model(x[k], alone), rtol=1e-5, atol=1e-6)
        view = stacking.member_trace(trace, k, {})
        assert [layer.name for layer in view.layers] == [layer.name for layer in alone.layers]
        for got, want in zip(view.layers, alone.layers):
            for a, b in zip(got.weights, want.weights):
                assert torch.equal(a, b.detach())
            if want.act_output is not None:
                torch.testing.assert_close(got.act_output, want.act_output.detach(), rtol=1e-5, atol=1e-6)
        assert len(view.hidden) == len(alone.hidden)


def test_linear_is_torch_linear_per_member():
    gen = torch.Generator().manual_seed(0)
    layers = [torch.nn.Linear(5, 3) for _ in range(MEMBERS)]
    ours = stacking.Linear(5, 3)
    ours.weight = torch.nn.Parameter(torch.stack([layer.weight.detach() for layer in layers]))
    ours.bias = torch.nn.Parameter(torch.stack([layer.bias.detach() for layer in layers]))
    x = torch.randn(MEMBERS, 4, 2, 5, generator=gen)  # extra middle dims (a readout of 2 steps)
    out = ours(x)
    assert out.shape == (MEMBERS, 4, 2, 3) and ours.member_shape == (MEMBERS,)
    for k, layer in enumerate(layers):
        torch.testing.assert_close(out[k], layer(x[k]), rtol=1e-6, atol=1e-7)


def test_batch_norm_normalizes_and_tracks_each_member_alone():
    gen = torch.Generator().manual_seed(1)
    torch_norms = [torch.nn.BatchNorm1d(4) for _ in range(MEMBERS)]
    with torch.no_grad():
        for norm in torch_norms:
            norm.weight.uniform_(0.5, 1.5, generator=gen)
            norm.bias.uniform_(-0.5, 0.5, generator=gen)
    plain = [stacking.BatchNorm(4) for _ in range(MEMBERS)]
    for ours, theirs in zip(plain, torch_norms):
        ours.load_state_dict({k: v for k, v in theirs.state_dict().items() if k != "num_batches_tracked"})
    stack = stacking.stack_models(plain)
    z = torch.randn(MEMBERS, 8, 4, generator=gen) * torch.tensor([1.0, 10.0, 0.1]).view(-1, 1, 1)
    out = stack(z)
    for k, theirs in enumerate(torch_norms):
        torch.testing.assert_close(out[k], theirs(z[k]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stack.running_mean[k], theirs.running_mean)
        torch.testing.assert_close(stack.running_var[k], theirs.running_var)
        torch.testing.assert_close(plain[k](z[k]), theirs(z[k]), rtol=0, atol=0)


@pytest.mark.parametrize("members", [1, MEMBERS])
def test_layer_norm_applies_each_members_gain_and_shift(members):
    gen = torch.Generator().manual_seed(2)
    torch_norms = [torch.nn.LayerNorm(4) for _ in range(members)]
    plain = [stacking.LayerNorm(4) for _ in range(members)]
    with torch.no_grad():
        for ours, theirs in zip(plain, torch_norms):
            theirs.weight.uniform_(0.5, 1.5, generator=gen)
            theirs.bias.uniform_(-0.5, 0.5, generator=gen)
            ours.weight.copy_(theirs.weight)
            ours.bias.copy_(theirs.bias)
    stack = stacking.stack_models(plain)
    z = torch.randn(members, 8, 4, generator=gen)
    out = stack(z)
    for k, theirs in enumerate(torch_norms):
        torch.testing.assert_close(out[k], theirs(z[k]), rtol=1e-6, atol=1e-6)


def test_prelu_learns_one_slope_per_member_and_its_view_is_that_members():
    slopes = [0.1, 0.25, -0.3]
    stack = stacking.stack_models([PReLU(s) for s in slopes])
    z = torch.randn(MEMBERS, 6, 4, generator=torch.Generator().manual_seed(3))
    out = stack(z)
    for k, slope in enumerate(slopes):
        torch.testing.assert_close(out[k], torch.nn.functional.leaky_relu(z[k], slope))
        view = stacking.member_activation(stack, k)
        assert isinstance(view, PReLU) and view.slope == pytest.approx(slope)
        assert not list(view.parameters()) and list(stack.parameters())  # a view, the stack keeps its own
        torch.testing.assert_close(view.derivative(z[k]), torch.where(z[k] > 0, 1.0, slope))
    tanh = Tanh()
    assert stacking.member_activation(tanh, 1) is tanh


def test_recurrent_products_are_each_members_matmul():
    gen = torch.Generator().manual_seed(4)
    weights = torch.randn(MEMBERS, 6, 3, generator=gen)
    bias = torch.randn(MEMBERS, 6, generator=gen)
    inputs = torch.randn(MEMBERS, 5, 7, 3, generator=gen)  # (E, B, T, in)
    projected = stacking.project(inputs, weights, bias)
    h = torch.randn(MEMBERS, 5, 3, generator=gen)
    recurred = stacking.matmul(h, weights) + stacking.row_bias(bias)
    for k in range(MEMBERS):
        w, b = weights[k].double(), bias[k].double()
        torch.testing.assert_close(projected[k].double(), inputs[k].double() @ w.T + b, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(recurred[k].double(), h[k].double() @ w.T + b, rtol=1e-5, atol=1e-6)


def test_stack_refuses_models_of_different_kinds_or_shapes():
    data = fake_dataset()
    mlp = make_model(data, ModelConfig(name="mlp", depth=2, width=4))
    with pytest.raises(ValueError, match="one kind"):
        stacking.stack_models([mlp, make_model(data, ModelConfig(name="resmlp", depth=2, width=4))])
    with pytest.raises(ValueError, match="same shapes"):
        stacking.stack_models([mlp, make_model(data, ModelConfig(name="mlp", depth=2, width=5))])

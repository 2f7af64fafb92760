"""Activations: closed-form derivatives against autograd, slopes, the step function."""

from __future__ import annotations

import pytest
import torch

from gradatlas.run import activations
from gradatlas.run.activations import ACTIVATIONS, make_activation


def _grid(n: int = 4001, low: float = -4.0, high: float = 4.0) -> torch.Tensor:
    """z values in [low, high] (float64) away from the kink at 0."""
    z = torch.linspace(low, high, n, dtype=torch.float64)
    return z[z.abs() > 1e-3]


def _autograd_derivative(act: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    z = z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(act(z).sum(), z)
    return grad


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivative_matches_autograd(name):
    act = make_activation(name).double()
    z = _grid()
    expected = _autograd_derivative(act, z)
    torch.testing.assert_close(act.derivative(z), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_derivative_matches_autograd_float32(name):
    act = make_activation(name)
    z = _grid().float()
    torch.testing.assert_close(act.derivative(z), _autograd_derivative(act, z), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["leaky_relu", "prelu"])
@pytest.mark.parametrize("slope", [0.01, 0.2, 0.5])
def test_slope_is_honoured(name, slope):
    act = make_activation(name, slope=slope).double()
    z = _grid()
    # Closed form: phi(z) = z for z > 0, slope * z otherwise.
    expected = torch.where(z > 0, z, slope * z)
    torch.testing.assert_close(act(z), expected)
    torch.testing.assert_close(act.derivative(z), torch.where(z > 0, 1.0, slope).double())
    torch.testing.assert_close(_autograd_derivative(act, z), act.derivative(z))


def test_default_slopes():
    assert make_activation("leaky_relu").slope == pytest.approx(0.01)
    assert make_activation("prelu").slope == pytest.approx(0.25)
    # A slope passed to an activation without one is ignored, not an error.
    relu = make_activation("relu", slope=0.3)
    assert torch.equal(relu(torch.tensor([-1.0, 2.0])), torch.tensor([0.0, 2.0]))


@pytest.mark.parametrize("name", ["leaky_relu", "prelu"])
def test_model_config_slope_reaches_every_layer(name):
    from gradatlas.run.config import ModelConfig
    from gradatlas.run.data import Dataset
    from gradatlas.run.models import make_model

    x = torch.randn(4, 3)
    data = Dataset(x, torch.zeros(4, dtype=torch.long), x, torch.zeros(4, dtype=torch.long),
                   "classification", 3, 2, False, 0, 0.5)
    model = make_model(data, ModelConfig(name="mlp", depth=3, width=4, activation=name, slope=0.3))
    assert [act.slope for act in model.acts] == pytest.approx([0.3] * 3)
    z = torch.tensor([-1.0, 2.0])
    torch.testing.assert_close(model.acts[0](z), torch.tensor([-0.3, 2.0]))


def test_prelu_slope_is_learned():
    act = make_activation("prelu", slope=0.25)
    params = list(act.parameters())
    assert len(params) == 1 and params[0].requires_grad
    z = torch.tensor([-2.0, -1.0, 3.0])
    act(z).sum().backward()
    # d/da sum(a * z for z < 0) = sum of the negative inputs.
    assert params[0].grad.item() == pytest.approx(-3.0)
    # The derivative follows the current (learned) slope.
    with torch.no_grad():
        params[0].fill_(0.7)
    assert act.slope == pytest.approx(0.7)
    torch.testing.assert_close(act.derivative(z), torch.tensor([0.7, 0.7, 1.0]))


def test_step_has_zero_gradient_and_backward_runs():
    act = make_activation("step")
    z = torch.linspace(-3, 3, 101, requires_grad=True)
    out = act(z)
    torch.testing.assert_close(out, (z.detach() > 0).float())
    out.sum().backward()  # must not raise
    assert z.grad is not None
    assert torch.count_nonzero(z.grad) == 0
    assert torch.count_nonzero(act.derivative(z.detach())) == 0


def test_step_blocks_training_signal_in_a_network():
    torch.manual_seed(0)
    first = torch.nn.Linear(4, 8)
    act = make_activation("step")
    head = torch.nn.Linear(8, 1)
    loss = head(act(first(torch.randn(16, 4)))).pow(2).mean()
    loss.backward()
    assert torch.count_nonzero(first.weight.grad) == 0
    assert torch.count_nonzero(head.weight.grad) > 0


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_max_slope_bounds_derivative(name):
    act = make_activation(name).double()
    z = torch.linspace(-20, 20, 400001, dtype=torch.float64)
    observed = act.derivative(z).abs().max().item()
    assert act.max_slope >= observed * (1 - 1e-9)


# The true suprema in closed form: sigmoid 1/4, tanh 1, relu 1; SELU scale*alpha (z -> 0-);
# SiLU and GELU maxima found numerically in the test below.
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "silu", "swish", "gelu", "selu"])
def test_max_slope_is_tight(name):
    act = make_activation(name).double()
    z = torch.linspace(-6, 6, 1200001, dtype=torch.float64)
    z.requires_grad_(True)
    (grad,) = torch.autograd.grad(act(z).sum(), z)
    observed = grad.abs().max().item()
    assert act.max_slope == pytest.approx(observed, rel=0.01)


def test_max_slope_closed_forms():
    assert activations.Sigmoid.max_slope == 0.25
    assert activations.SELU.max_slope == pytest.approx(1.0507009873554805 * 1.6732632423543772)
    # GELU' is maximal where GELU'' = pdf(z) (2 - z^2) = 0, i.e. z = sqrt(2).
    z = torch.tensor(2.0, dtype=torch.float64).sqrt()
    gelu_max = 0.5 * (1 + torch.erf(z / 2**0.5)) + z * torch.exp(-z * z / 2) / (2 * torch.pi) ** 0.5
    assert activations.GELU.max_slope == pytest.approx(gelu_max.item(), rel=1e-12)


def test_swish_is_silu():
    z = _grid().float()
    torch.testing.assert_close(make_activation("swish")(z), z * torch.sigmoid(z))


def test_selu_matches_definition():
    z = _grid()
    expected = torch.where(z > 0, activations.SELU_SCALE * z,
                           activations.SELU_SCALE * activations.SELU_ALPHA * (torch.exp(z) - 1))
    torch.testing.assert_close(make_activation("selu")(z), expected)


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError) as err:
        make_activation("softplusish")
    message = str(err.value)
    assert "softplusish" in message
    for name in ACTIVATIONS:
        assert name in message


def test_step_ste_forwards_the_step_and_backpropagates_hardtanh():
    act = make_activation("step_ste")
    z = torch.cat([torch.linspace(-3, 3, 601), torch.tensor([-1.0, 1.0, 0.0])]).requires_grad_(True)
    out = act(z)
    assert torch.equal(out, (z.detach() > 0).float())  # exactly the step's values
    (grad,) = torch.autograd.grad(out.sum(), z)
    # Independent reference: autograd of a hand-written hard-tanh, z inside (-1, 1) and sign(z)
    # outside and at +-1, whose gradient is 1 inside and 0 elsewhere.
    reference = z.detach().clone().requires_grad_(True)
    hardtanh = torch.where(reference.abs() < 1, reference, torch.sign(reference).detach())
    (expected,) = torch.autograd.grad(hardtanh.sum(), reference)
    assert torch.equal(grad, expected)
    assert expected[-3:].tolist() == [0.0, 0.0, 1.0]  # z = -1 and 1 block the gradient, z = 0 passes it
    assert torch.equal(act.derivative(z.detach()), expected)
    assert 0 < torch.count_nonzero(grad) < len(z)
    nan = act(torch.tensor([float("nan")]))
    assert torch.isnan(nan).all()  # a non-finite pre-activation stays visible, as with the step


def test_step_ste_passes_a_training_signal_where_the_step_does_not():
    torch.manual_seed(0)
    x = torch.randn(16, 4)
    grads = {}
    for name in ("step", "step_ste"):
        torch.manual_seed(1)
        first, head = torch.nn.Linear(4, 8), torch.nn.Linear(8, 1)
        out = head(make_activation(name)(first(x)))
        out.pow(2).mean().backward()
        grads[name] = first.weight.grad
    assert torch.count_nonzero(grads["step"]) == 0
    assert torch.count_nonzero(grads["step_ste"]) > 0

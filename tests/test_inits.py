"""Initializers: empirical statistics against the textbook formulas written out here."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import fake_dataset

from gradatlas.run import inits
from gradatlas.run.config import ModelConfig
from gradatlas.run.inits import INITIALIZERS, initialize, weight_std
from gradatlas.run.models import make_model

FAN_OUT, FAN_IN = 512, 256
GAINS = (0.5, 1.0, 2.0)
NORMAL_STD = 0.05  # the fixed std of init=normal in these tests


def textbook_std(name: str, fan_in: int, fan_out: int, gain: float, std: float = NORMAL_STD) -> float:
    """Glorot & Bengio (2010), He et al. (2015), LeCun et al. (1998), PyTorch's nn.Linear."""
    if name in ("he_normal", "he_uniform"):
        return gain * math.sqrt(2.0 / fan_in)
    if name in ("xavier_normal", "xavier_uniform"):
        return gain * math.sqrt(2.0 / (fan_in + fan_out))
    if name == "lecun_normal":
        return gain / math.sqrt(fan_in)
    if name == "default":
        # U(-b, b) with b = 1/sqrt(fan_in) has variance b^2 / 3.
        return gain / math.sqrt(3.0 * fan_in)
    if name == "normal":
        return gain * std
    if name == "orthogonal":
        # Orthonormal rows (or columns): the squared entries sum to min(fan_in, fan_out).
        return gain * math.sqrt(min(fan_in, fan_out) / (fan_in * fan_out))
    raise AssertionError(name)


def _filled(name: str, shape: tuple[int, int], gain: float, seed: int = 0, chunks: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    weight = torch.empty(*shape)
    initialize(weight, name, gain=gain, std=NORMAL_STD, chunks=chunks)
    return weight


def _kurtosis(x: torch.Tensor) -> float:
    x = x.double().flatten()
    x = x - x.mean()
    return (x.pow(4).mean() / x.pow(2).mean() ** 2).item()


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
@pytest.mark.parametrize("gain", GAINS)
@pytest.mark.parametrize("shape", [(FAN_OUT, FAN_IN), (FAN_IN, FAN_OUT)], ids=["tall", "wide"])
def test_empirical_std_matches_weight_std(name, gain, shape):
    fan_out, fan_in = shape
    weight = _filled(name, shape, gain)
    target = weight_std(name, fan_in, fan_out, gain, NORMAL_STD)
    assert target == pytest.approx(textbook_std(name, fan_in, fan_out, gain), rel=1e-12)
    assert weight.std().item() == pytest.approx(target, rel=0.03)
    assert abs(weight.mean().item()) < 0.02 * target


@pytest.mark.parametrize("name", sorted(INITIALIZERS))
@pytest.mark.parametrize("fans", [(256, 512), (512, 256), (40, 64), (1, 7)])
@pytest.mark.parametrize("gain", GAINS)
def test_weight_std_textbook_formulas(name, fans, gain):
    fan_in, fan_out = fans
    expected = textbook_std(name, fan_in, fan_out, gain)
    assert weight_std(name, fan_in, fan_out, gain, NORMAL_STD) == pytest.approx(expected, rel=1e-12)


def test_default_matches_pytorch_linear():
    torch.manual_seed(1)
    reference = torch.nn.Linear(FAN_IN, FAN_OUT).weight.detach()
    assert reference.std().item() == pytest.approx(weight_std("default", FAN_IN, FAN_OUT), rel=0.03)
    ours = _filled("default", (FAN_OUT, FAN_IN), 1.0)
    bound = 1.0 / math.sqrt(FAN_IN)
    assert ours.abs().max().item() <= bound
    assert ours.abs().max().item() > 0.99 * bound


@pytest.mark.parametrize("name", ["default", "xavier_uniform", "he_uniform"])
@pytest.mark.parametrize("gain", GAINS)
def test_uniform_initializers_are_uniform(name, gain):
    weight = _filled(name, (FAN_OUT, FAN_IN), gain)
    bound = math.sqrt(3.0) * textbook_std(name, FAN_IN, FAN_OUT, gain)
    assert weight.abs().max().item() <= bound * (1 + 1e-6)
    assert weight.abs().max().item() > 0.99 * bound
    assert _kurtosis(weight) == pytest.approx(1.8, abs=0.05)  # uniform: 9/5


@pytest.mark.parametrize("name", ["normal", "lecun_normal", "xavier_normal", "he_normal"])
def test_normal_initializers_are_gaussian(name):
    weight = _filled(name, (FAN_OUT, FAN_IN), 1.0)
    assert _kurtosis(weight) == pytest.approx(3.0, abs=0.1)


@pytest.mark.parametrize("gain", GAINS)
def test_orthogonal_wide_rows_are_orthonormal(gain):
    weight = _filled("orthogonal", (64, 256), gain).double()
    torch.testing.assert_close(weight @ weight.T, gain**2 * torch.eye(64, dtype=torch.float64), atol=1e-5, rtol=0)


@pytest.mark.parametrize("gain", GAINS)
def test_orthogonal_tall_columns_are_orthonormal(gain):
    weight = _filled("orthogonal", (256, 64), gain).double()
    torch.testing.assert_close(weight.T @ weight, gain**2 * torch.eye(64, dtype=torch.float64), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["xavier_normal", "xavier_uniform", "he_normal", "lecun_normal"])
def test_chunked_init_uses_one_gate_as_fan_out(name):
    hidden, fan_in, gain = 128, 64, 1.5
    weight = _filled(name, (4 * hidden, fan_in), gain, chunks=4)
    per_chunk = textbook_std(name, fan_in, hidden, gain)
    for block in weight.chunk(4, dim=0):
        assert block.std().item() == pytest.approx(per_chunk, rel=0.05)
    if name.startswith("xavier"):
        # The whole stacked matrix would give a visibly smaller std.
        assert textbook_std(name, fan_in, 4 * hidden, gain) < 0.8 * per_chunk


def test_chunked_orthogonal_is_orthogonal_per_gate():
    hidden, fan_in, gain = 32, 48, 1.0
    weight = _filled("orthogonal", (4 * hidden, fan_in), gain, chunks=4).double()
    for block in weight.chunk(4, dim=0):
        torch.testing.assert_close(block @ block.T, torch.eye(hidden, dtype=torch.float64), atol=1e-5, rtol=0)


def test_lstm_and_gru_weights_are_initialized_per_gate():
    data = fake_dataset(n=4, input_dim=32, length=3)
    for name, gates in (("lstm", 4), ("gru", 3)):
        torch.manual_seed(0)
        cfg = ModelConfig(name=name, depth=1, width=96, init="xavier_normal", init_gain=1.0)
        cell = make_model(data, cfg).cells[0]
        for weight, fan_in in ((cell.weight_ih, 32), (cell.weight_hh, 96)):
            assert weight.shape == (gates * 96, fan_in)
            for block in weight.detach().chunk(gates, dim=0):
                assert block.std().item() == pytest.approx(math.sqrt(2.0 / (fan_in + 96)), rel=0.05)
        assert torch.count_nonzero(cell.bias_hh) == 0
        if name == "lstm":
            # Forget-gate bias (PyTorch order i, f, g, o) set to forget_bias, the others 0.
            torch.testing.assert_close(cell.bias_ih[96:192], torch.ones(96))
            assert torch.count_nonzero(cell.bias_ih[:96]) == 0
            assert torch.count_nonzero(cell.bias_ih[192:]) == 0


def test_recurrent_default_init_is_pytorch_uniform():
    torch.manual_seed(0)
    data = fake_dataset(n=4, input_dim=5, length=3)
    cell = make_model(data, ModelConfig(name="gru", depth=1, width=64)).cells[0]
    bound = 1.0 / math.sqrt(64)
    for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh):
        assert p.abs().max().item() <= bound
    assert cell.weight_hh.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


@pytest.mark.parametrize("init", ["he_normal", "xavier_uniform", "orthogonal", "normal"])
def test_mlp_layers_follow_initializer_with_zero_bias(init):
    torch.manual_seed(0)
    data = fake_dataset(n=4, input_dim=200)
    cfg = ModelConfig(name="mlp", depth=2, width=300, init=init, init_gain=2.0, init_std=0.05)
    model = make_model(data, cfg)
    for layer in model.linears:
        fan_out, fan_in = layer.weight.shape
        expected = textbook_std(init, fan_in, fan_out, 2.0, 0.05)
        assert layer.weight.std().item() == pytest.approx(expected, rel=0.05)
        assert torch.count_nonzero(layer.bias) == 0


def test_mlp_default_init_gain_and_bias_init():
    torch.manual_seed(0)
    data = fake_dataset(n=4, input_dim=100)
    model = make_model(data, ModelConfig(name="mlp", depth=2, width=100, init="default", init_gain=3.0,
                                         bias_init=-1.0))
    for layer in model.linears:
        assert layer.weight.abs().max().item() <= 3.0 / math.sqrt(layer.weight.shape[1]) * (1 + 1e-6)
        assert layer.weight.std().item() == pytest.approx(3.0 / math.sqrt(3 * layer.weight.shape[1]), rel=0.05)
        torch.testing.assert_close(layer.bias.detach(), torch.full_like(layer.bias, -1.0))


def test_unknown_initializer_raises():
    with pytest.raises(ValueError, match="unknown init 'glorot'.*he_normal"):
        initialize(torch.empty(3, 3), "glorot")
    with pytest.raises(ValueError, match="known:.*orthogonal"):
        weight_std("glorot", 3, 3)
    with pytest.raises(ValueError):
        inits.check_name("")

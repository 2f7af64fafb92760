"""gradatlas.run.optim against torch.optim: the same parameters after every step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gradatlas.run import optim
from gradatlas.run.config import OptimConfig


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))


def _trajectory(make_optimizer, steps: int = 25) -> list[list[torch.Tensor]]:
    """Train a tiny net on fixed random batches; the parameters after every step."""
    net = _net()
    opt = make_optimizer(list(net.parameters()))
    gen = torch.Generator().manual_seed(1)
    out = []
    for _ in range(steps):
        x = torch.randn(16, 5, generator=gen)
        y = torch.randn(16, 3, generator=gen)
        opt.zero_grad()
        ((net(x) - y) ** 2).mean().backward()
        opt.step()
        out.append([p.detach().clone() for p in net.parameters()])
    return out


CASES = {
    "sgd": (lambda ps: optim.SGD(ps, lr=0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "sgd-momentum-wd": (lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
                        lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3)),
    "adam": (lambda ps: optim.Adam(ps, lr=0.01), lambda ps: torch.optim.Adam(ps, lr=0.01)),
    "adam-wd": (lambda ps: optim.Adam(ps, lr=0.003, weight_decay=1e-2),
                lambda ps: torch.optim.Adam(ps, lr=0.003, weight_decay=1e-2)),
}


@pytest.mark.parametrize("case", CASES)
def test_matches_torch_optim_step_by_step(case):
    ours, reference = CASES[case]
    for step, (a, b) in enumerate(zip(_trajectory(ours), _trajectory(reference))):
        for p, q in zip(a, b):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7, msg=f"{case}: step {step}")


def test_parameters_moved():
    # The comparison above would pass for two optimizers that do nothing.
    before = [p.detach().clone() for p in _net().parameters()]
    after = _trajectory(CASES["adam"][0])[-1]
    assert all((p - q).abs().max() > 1e-3 for p, q in zip(before, after))


def test_parameter_without_gradient_is_left_alone():
    used, unused = nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(3))
    for opt in (optim.SGD([used, unused], lr=0.1, momentum=0.9), optim.Adam([used, unused], lr=0.1)):
        opt.zero_grad()
        (used * 2).sum().backward()
        opt.step()
        assert torch.equal(unused, torch.ones(3))
        assert not torch.equal(used, torch.ones(3))


def test_registry_builds_from_config():
    params = list(_net().parameters())
    sgd = optim.OPTIMIZERS["sgd"](params, OptimConfig(name="sgd", lr=0.2, momentum=0.5))
    adam = optim.OPTIMIZERS["adam"](params, OptimConfig(name="adam", lr=0.01, weight_decay=0.1))
    assert (type(sgd), sgd.lr, sgd.momentum) == (optim.SGD, 0.2, 0.5)
    assert (type(adam), adam.lr, adam.weight_decay) == (optim.Adam, 0.01, 0.1)

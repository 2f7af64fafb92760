"""Stacked runs (``loop.train_stack``): E runs trained as one network must each give what the
run alone gives. The reference is main's single-run loop (``single_run_reference``), which
trains a run's own model (no member dimension) with ``torch.nn.utils`` norms and a run's
optimizer. That model shares its architecture's one forward with the stack, but none of the
member-dimension operations (``gradatlas.run.stacking``: batched matmuls, per-member batch
norm, member views), which are what differ; the forward itself is checked against PyTorch's
cells and plain autograd in test_probes."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SUBPROCESS_ENV, TINY_DATA
from single_run_reference import train_single

from gradatlas.run import loop, records, runner
from gradatlas.run.config import to_container
from gradatlas.run.data import make_dataset
from gradatlas.run.models import make_model, stack_models

SEQ = ("data=adding", "data.length=5", "data.n_train=96", "data.n_test=32", "train.batch_size=16",
       "model.depth=2", "model.width=8")
# Runs of 20+ steps: 4 (or 6) steps per epoch, 6 epochs, at most 20 steps; every step-0 probe.
BASE = ("device=cpu", "train.epochs=6", "train.max_steps=20", "probe.dense_until=2")
MLP = ("model=mlp", "model.depth=3", "model.width=8", "train.batch_size=32", *TINY_DATA)
CASES = {
    "mlp-relu": (*MLP, "model.activation=relu", "model.init=he_normal"),
    "mlp-tanh-batchnorm-momentum": (*MLP, "model.activation=tanh", "model.norm=batch", "optim.momentum=0.9"),
    "mlp-prelu-layernorm": (*MLP, "model.activation=prelu", "model.norm=layer", "optim.weight_decay=0.01"),
    "resmlp-selu-batchnorm-adam": (*MLP, "model=resmlp", "model.activation=selu", "model.norm=batch",
                                   "optim=adam", "optim.lr=0.01"),
    "rnn-clip": ("model=rnn", "model.activation=tanh", *SEQ, "train.clip=norm", "train.clip_value=0.5"),
    "gru-adam": ("model=gru", *SEQ, "optim=adam", "optim.lr=0.01"),
    "lstm-clip-value": ("model=lstm", *SEQ, "train.clip=value", "train.clip_value=0.01"),
}
# What members of one stack may differ in, one variant per member (8 members).
VARIANTS = [
    (), ("seed=1",), ("seed=2", "optim.lr=0.02"), ("seed=3", "model.init_gain=1.5"),
    ("seed=4", "train.clip=norm", "train.clip_value=0.3"), ("seed=5", "optim.lr=0.1", "train.clip=value", "train.clip_value=0.02"),
    ("seed=6", "model.init=orthogonal"), ("seed=7", "optim.lr=0.003", "model.bias_init=0.1"),
]


def _models(cfgs):
    models = []
    for cfg in cfgs:
        runner.seed_everything(cfg.seed)
        data = make_dataset(cfg.data)
        models.append(make_model(data, cfg.model))
    return data, models


def _reference(cfg):
    data, (model,) = _models([cfg])
    return train_single(model, data, cfg, torch.device("cpu"))


def _stack(cfgs):
    data, models = _models(cfgs)
    return loop.train_stack(models, data, cfgs, torch.device("cpu"))


def _step0(result):
    layers = {(r[1], r[3]): r[4] for r in result.layer_rows if r[0] == 0}
    timesteps = {(r[1], r[2]): r[3] for r in result.timestep_rows if r[0] == 0}
    return {**layers, **timesteps}


def _absolute(values, key, rel):
    """The absolute tolerance of one step-0 value: a mean of signed activations (act_mean) can
    cancel to near 0, where float32 summation order moves it by ``rel`` of the summands' scale
    (the layer's act_std), not of the mean itself (measured: a batch-normed tanh layer's mean
    -9.86e-4 differs by 1e-8 between stacked and single-run sums, 1e-5 of the mean)."""
    layer, quantity = key
    scale = values.get((layer, "act_std"), 0.0) if quantity == "act_mean" else 0.0
    return max(rel * abs(scale), 1e-30) if math.isfinite(scale) else 1e-30


def _assert_close(result, reference, rel):
    assert result.status == reference.status and result.diverged_step == reference.diverged_step
    got, want = _step0(result), _step0(reference)
    assert set(got) == set(want) and len(want) > 10
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=rel, abs=_absolute(want, key, rel), nan_ok=True), key
    losses = [row["loss"] for row in result.step_rows[:20]]
    wanted = [row["loss"] for row in reference.step_rows[:20]]
    assert len(wanted) == 20
    assert losses == pytest.approx(wanted, rel=rel)


@pytest.mark.parametrize("case", sorted(CASES))
def test_stack_of_one_matches_single_run(make_run_config, case):
    cfg = make_run_config([*BASE, *CASES[case]])
    data, (model,) = _models([cfg])
    _assert_close(loop.train(model, data, cfg, torch.device("cpu")), _reference(cfg), rel=1e-6)


@pytest.mark.parametrize("case", ["mlp-tanh-batchnorm-momentum", "mlp-prelu-layernorm", "gru-adam", "lstm-clip-value"])
def test_member_of_stack_of_8_matches_its_run_alone(make_run_config, case):
    cfgs = [make_run_config([*BASE, *CASES[case], *variant], f"m{k}") for k, variant in enumerate(VARIANTS)]
    for cfg, result in zip(cfgs, _stack(cfgs)):
        _assert_close(result, _reference(cfg), rel=1e-5)


def _rows(result):
    return result.status, result.diverged_step, result.step_rows, result.layer_rows, result.timestep_rows, result.final


@pytest.mark.parametrize("case", ["mlp-tanh-batchnorm-momentum", "lstm-clip-value"])
def test_nan_in_one_member_leaves_the_others_bit_identical(make_run_config, case):
    cfgs = [make_run_config([*BASE, *CASES[case], *variant], f"m{k}") for k, variant in enumerate(VARIANTS[:4])]
    data, clean = _models(cfgs)
    _, poisoned = _models(cfgs)
    with torch.no_grad():
        next(poisoned[2].parameters()).view(-1)[0] = math.nan
    baseline = loop.train_stack(clean, data, cfgs, torch.device("cpu"))
    hit = loop.train_stack(poisoned, data, cfgs, torch.device("cpu"))
    assert hit[2].status == "diverged" and hit[2].diverged_step == 0 and baseline[2].status == "ok"
    for k in (0, 1, 3):
        assert _rows(hit[k]) == _rows(baseline[k]), k


def test_member_diverging_mid_run_leaves_the_others_bit_identical(make_run_config):
    tame = [make_run_config([*BASE, *CASES["mlp-relu"], *variant], f"m{k}") for k, variant in enumerate(VARIANTS[:3])]
    wild = [*tame[:1], make_run_config([*BASE, *CASES["mlp-relu"], "seed=1", "optim.lr=1e4"], "wild"), tame[2]]
    baseline, hit = _stack(tame), _stack(wild)
    assert hit[1].status == "diverged" and 0 < hit[1].diverged_step < 20
    assert len(hit[1].step_rows) == hit[1].diverged_step + 1
    for k in (0, 2):
        assert _rows(hit[k]) == _rows(baseline[k])


def test_per_member_clipping_equals_clipping_each_member_alone():
    gen = torch.Generator().manual_seed(0)
    members = 6
    params = [torch.nn.Parameter(torch.zeros(members, *shape)) for shape in ((7, 5), (7,), (3, 7))]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * torch.logspace(-2, 1, members).view(-1, *([1] * (p.dim() - 1)))
    modes = ["none", "norm", "value", "norm", "value", "norm"]
    values = [1.0, 0.3, 0.05, 1e3, 1e3, 1.7]
    alone = []
    for k in range(members):
        grads = [torch.nn.Parameter(torch.zeros_like(p[k])) for p in params]
        for g, p in zip(grads, params):
            g.grad = p.grad[k].clone()
        norm = torch.nn.utils.get_total_norm([g.grad for g in grads])
        clipped = loop.clip_gradients(grads, modes[k], values[k], norm)
        alone.append(([g.grad for g in grads], clipped))
    norms = loop.member_grad_norms(params, members)
    for k in range(members):
        assert torch.equal(norms[k], torch.nn.utils.get_total_norm([p.grad[k] for p in params]))
    clipped = loop.clip_members(params, modes, values, norms)
    assert clipped == [c for _, c in alone] == [False, True, True, False, False, True]
    for k, (grads, _) in enumerate(alone):
        for p, g in zip(params, grads):
            assert torch.equal(p.grad[k], g), k


def _record(path):
    record = records.read_run_record(path)
    info = json.loads((path / "run.json").read_text())
    return record, info


def test_rerunning_a_stack_gives_identical_records(make_run_config):
    first = [make_run_config([*BASE, *CASES["gru-adam"], *v], f"a{k}") for k, v in enumerate(VARIANTS[:3])]
    second = [make_run_config([*BASE, *CASES["gru-adam"], *v], f"b{k}") for k, v in enumerate(VARIANTS[:3])]
    infos_a, infos_b = runner.run_stack(first), runner.run_stack(second)
    for k, (a, b) in enumerate(zip(first, second)):
        rec_a, info_a = _record(Path(a.out))
        rec_b, info_b = _record(Path(b.out))
        for name in ("steps", "layers", "timesteps"):
            frame_a, frame_b = getattr(rec_a, name), getattr(rec_b, name)
            assert frame_a.equals(frame_b), (k, name)
        volatile = {"wall_time_s", "command"}  # the out= path is part of the command and config.yaml
        for info in (info_a, info_b):
            info["files"].pop("config.yaml")
        assert info_a["files"] and {key: v for key, v in info_a.items() if key not in volatile} == \
               {key: v for key, v in info_b.items() if key not in volatile}
        assert info_a["stack"] == {"size": 3, "index": k, "id": infos_a[0]["stack"]["id"]}


def test_stack_refuses_members_of_different_shape(make_run_config):
    cfgs = [make_run_config([*BASE, *CASES["mlp-relu"]], "a"),
            make_run_config([*BASE, *CASES["mlp-relu"], "model.width=9"], "b")]
    with pytest.raises(ValueError, match="share every setting"):
        _stack(cfgs)


@pytest.mark.parametrize("case", ["mlp-tanh-batchnorm-momentum", "lstm-clip-value"])
def test_stacked_evaluation_equals_each_member_evaluated_alone(make_run_config, case):
    # A stack of E evaluates batch / E examples per member and pass. With as many examples per
    # member as a stack of one, every value is bitwise the same; with batch / E, matmuls of
    # fewer rows may round differently (here 3 rows against 12). The per-run module's own
    # forward (loop.evaluate) agrees up to the rounding of batched matmuls.
    cfgs = [make_run_config([*BASE, *CASES[case], *variant], f"m{k}") for k, variant in enumerate(VARIANTS[:4])]
    data, models = _models(cfgs)
    stack = stack_models(models)
    alone = [loop.evaluate_stack(stack_models([m]), data, data.x_test, data.y_test, batch=12)[0] for m in models]
    assert len(data.x_test) > 12
    assert loop.evaluate_stack(stack, data, data.x_test, data.y_test, batch=48) == alone
    for got, want, model in zip(loop.evaluate_stack(stack, data, data.x_test, data.y_test, batch=12), alone, models):
        assert got == pytest.approx(want, rel=1e-6)
        assert got == pytest.approx(loop.evaluate(model, data, data.x_test, data.y_test), rel=1e-5)


ALLOCATOR_CHECK = """
import json, sys, torch
from gradatlas.run import loop, runner
from gradatlas.run.config import load_run_config
tuned = runner.configure_allocator() if sys.argv[1] == "tuned" else False
cfgs = [load_run_config(json.loads(c)) for c in sys.argv[2:]]
models = []
for cfg in cfgs:
    runner.seed_everything(cfg.seed)
    data = runner.make_dataset(cfg.data)
    models.append(runner.make_model(data, cfg.model))
results = loop.train_stack(models, data, cfgs, torch.device("cpu"))
print(json.dumps(tuned))
print(json.dumps([[r.step_rows, r.layer_rows, r.timestep_rows, r.final] for r in results]))
"""


def _python(script: str, *args: str) -> list[str]:
    """stdout lines of ``script`` run in a fresh process (glibc's settings are per process)."""
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True,
                          timeout=600, env={**os.environ, **SUBPROCESS_ENV})
    return done.stdout.splitlines()


def test_tuned_allocator_leaves_every_value_unchanged(make_run_config):
    # What the tuning buys (fewer page faults, faster stacks) is measured in bench/, not here:
    # the faults of the same steps varied from 0 to 12,000 between processes, tuned or not.
    # Tensors of the full scale's size (width 64, length 50, batch 128), where it matters.
    size = ("model.width=64", "data.length=50", "data.n_train=384", "train.batch_size=128", "train.max_steps=3")
    cfgs = [make_run_config([*BASE, *CASES["lstm-clip-value"], *variant, *size], f"m{k}")
            for k, variant in enumerate(VARIANTS[:2])]
    args = [json.dumps(to_container(cfg)) for cfg in cfgs]
    outputs = {mode: _python(ALLOCATOR_CHECK, mode, *args)[-2:] for mode in ("tuned", "default")}
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert json.loads(outputs["tuned"][0]) is glibc and json.loads(outputs["default"][0]) is False
    # rows as text: NaN equals NaN there
    assert outputs["tuned"][1] == outputs["default"][1] and '"loss"' in outputs["tuned"][1]

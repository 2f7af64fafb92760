"""Training end to end through ``runner.run``: every architecture, option and failure path,
determinism, atomic records, and the physics of vanishing gradients at initialization."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import TINY_DATA, TINY_MLP, fake_dataset

from gradatlas.core import layout, names
from gradatlas.core.files import RecordError
from gradatlas.run import activations, config, inits, loop, records, runner
from gradatlas.run.data import adding_problem, copy_task, make_dataset
from gradatlas.run.models import make_model
from gradatlas.run.probes import probe_set_schedule
from gradatlas.run.train import CONF_DIR

SEQ_DATA = ("data=adding", "data.length=6", "data.n_train=64", "data.n_test=32", "train.batch_size=16")
ARCHITECTURES = {
    "mlp": ["model=mlp"],
    "resmlp": ["model=resmlp"],
    "rnn-tanh": ["model=rnn", "model.activation=tanh", *SEQ_DATA],
    "rnn-relu": ["model=rnn", "model.activation=relu", *SEQ_DATA],
    "gru": ["model=gru", *SEQ_DATA],
    "lstm": ["model=lstm", *SEQ_DATA],
}
LAYER_QUANTITIES = {"weight_grad_norm", "backprop_norm", "act_mean", "act_std", "saturated_frac",
                    "dead_frac", "died_frac", "weight_norm", "update_ratio", "underflow"}


def tiny(*overrides: str) -> list[str]:
    """The tiny MLP run with ``overrides`` applied last."""
    return [*TINY_MLP, *overrides]


def train_and_read(make_run_config, overrides, name="run"):
    cfg = make_run_config(overrides, name)
    info = runner.run(cfg)
    return cfg, info, records.read_run_record(cfg.out)


def _value(layers: pd.DataFrame, step: int, layer: int, quantity: str) -> float:
    rows = layers[(layers.step == step) & (layers.layer == layer) & (layers.quantity == quantity)]
    assert len(rows) == 1, (step, layer, quantity)
    return float(rows.value.iloc[0])


# --------------------------------------------------------------------------- architectures


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_each_architecture_trains(make_run_config, arch):
    overrides = tiny("model.depth=2", "model.width=8", "train.max_steps=5", *ARCHITECTURES[arch])
    cfg, info, record = train_and_read(make_run_config, overrides)
    assert info["status"] == "ok" and info["diverged_step"] is None
    # run.json holds what run() returned, plus the schema version and the files' contract.
    assert {k: v for k, v in record.info.items() if k not in ("schema_version", "files")} == info
    tables = {layout.STEPS_FILE: record.steps, layout.LAYERS_FILE: record.layers}
    if record.timesteps is not None:
        tables[layout.TIMESTEPS_FILE] = record.timesteps
    assert {name: f["rows"] for name, f in record.info["files"].items() if name != layout.CONFIG_FILE} == {
        name: len(frame) for name, frame in tables.items()}
    steps = record.steps
    assert steps.step.tolist() == list(range(5))
    assert np.isfinite(steps.loss).all() and np.isfinite(steps.grad_norm).all()
    assert math.isfinite(info["final_train_loss"]) and math.isfinite(info["test_metric"])
    layers = record.layers
    assert set(layers.step) == {0, 1, 2, 4}  # the default probe schedule for 5 steps
    assert LAYER_QUANTITIES <= set(layers.quantity)
    assert np.isfinite(layers.value).all()
    layer_names = layers[layers.step == 0].drop_duplicates("layer").sort_values("layer").name.tolist()
    assert layer_names[-1] == "head" and len(layer_names) == 3
    # Training changed every layer's weights.
    assert (layers[layers.quantity == "update_ratio"].value > 0).all()
    recurrent = cfg.model.name in names.RECURRENT_MODELS
    assert (record.timesteps is not None) == recurrent
    if recurrent:
        hidden = record.timesteps[record.timesteps.quantity == "hidden_grad_norm"]
        assert sorted(set(hidden.t)) == list(range(1, 7))
        assert (hidden.value > 0).all()


def test_step_zero_loss_and_grad_norm_match_a_fresh_model(make_run_config):
    """steps.parquet at step 0 against an independent forward/backward of the same model."""
    cfg, info, record = train_and_read(make_run_config, tiny("model.activation=tanh", "seed=5"))
    runner.seed_everything(cfg.seed)
    data = make_dataset(cfg.data)
    model = make_model(data, cfg.model)
    # The loop draws its first batch from a generator seeded with cfg.seed.
    index = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(cfg.seed))[:32]
    loss = F.cross_entropy(model(data.x_train[index]), data.y_train[index])
    loss.backward()
    grad_norm = torch.sqrt(sum(p.grad.double().pow(2).sum() for p in model.parameters())).item()
    first = record.steps.iloc[0]
    assert first.loss == pytest.approx(loss.item(), rel=1e-6)
    assert first.grad_norm == pytest.approx(grad_norm, rel=1e-5)
    for layer, linear in enumerate([*model.linears, model.head]):
        assert _value(record.layers, 0, layer, "weight_norm") == pytest.approx(
            torch.linalg.norm(linear.weight.detach()).item(), rel=1e-6)
        assert _value(record.layers, 0, layer, "weight_grad_norm") == pytest.approx(
            torch.linalg.norm(linear.weight.grad).item(), rel=1e-5)


def test_sgd_update_ratio_is_lr_times_grad_over_weight(make_run_config):
    _, _, record = train_and_read(make_run_config, tiny("probe=dense", "optim.lr=0.1"))
    layers = record.layers
    for step in range(3):
        for layer in range(4):
            expected = 0.1 * _value(layers, step, layer, "weight_grad_norm") / _value(layers, step, layer, "weight_norm")
            assert _value(layers, step, layer, "update_ratio") == pytest.approx(expected, rel=1e-4)
    # The global gradient norm includes the biases: at least the weights' share.
    for step in range(3):
        weights = math.sqrt(sum(_value(layers, step, layer, "weight_grad_norm") ** 2 for layer in range(4)))
        assert record.steps.grad_norm.iloc[step] >= weights * (1 - 1e-6)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("norm", names.NORMS)
@pytest.mark.parametrize("clip", names.CLIPS)
def test_norm_and_clip_modes(make_run_config, norm, clip):
    lr, clip_value = 0.2, 0.05
    overrides = tiny(f"model.norm={norm}", f"train.clip={clip}", f"train.clip_value={clip_value}",
                     f"optim.lr={lr}", "probe=dense")
    _, info, record = train_and_read(make_run_config, overrides)
    assert info["status"] == "ok"
    steps = record.steps
    assert np.isfinite(steps.loss).all()
    layers = record.layers
    for step in steps.step:
        for layer in range(4):
            update = _value(layers, step, layer, "update_ratio") * _value(layers, step, layer, "weight_norm")
            if clip == "norm":
                assert update <= lr * clip_value * (1 + 1e-4)
            elif clip == "value":
                n_weights = 8 * (40 if layer == 0 else 8) if layer < 3 else 10 * 8
                assert update <= lr * clip_value * math.sqrt(n_weights) * (1 + 1e-4)
    if clip == "none":
        assert not steps.clipped.any()
    elif clip == "norm":
        assert steps.clipped.tolist() == (steps.grad_norm > clip_value).tolist()
        assert steps.clipped.any()
    else:
        assert steps.clipped.all()  # gradients of a fresh net have entries above 0.05


def test_clip_gradients_against_reference():
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5))]
    grads = [torch.randn(3, 4) * 3, torch.randn(5) * 3]
    total = torch.sqrt(sum(g.pow(2).sum() for g in grads))

    def reset():
        for p, g in zip(params, grads):
            p.grad = g.clone()

    reset()
    assert loop.clip_gradients(params, "norm", 1.0, total) is True
    for p, g in zip(params, grads):
        torch.testing.assert_close(p.grad, g / total, rtol=1e-5, atol=1e-6)
    reset()
    assert loop.clip_gradients(params, "norm", 1e6, total) is False
    for p, g in zip(params, grads):
        torch.testing.assert_close(p.grad, g)
    reset()
    assert loop.clip_gradients(params, "value", 0.5, total) is True
    for p, g in zip(params, grads):
        torch.testing.assert_close(p.grad, g.clamp(-0.5, 0.5))
    reset()
    assert loop.clip_gradients(params, "value", 1e6, total) is False
    reset()
    assert loop.clip_gradients(params, "none", 1e-6, total) is False
    for p, g in zip(params, grads):
        torch.testing.assert_close(p.grad, g)


@pytest.mark.parametrize("activation", sorted(activations.ACTIVATIONS))
def test_every_activation_runs(make_run_config, activation):
    _, info, record = train_and_read(make_run_config, tiny(f"model.activation={activation}"))
    assert info["status"] == "ok"
    assert np.isfinite(record.steps.loss).all()
    layers = record.layers
    if activation == "step":
        # Zero derivative everywhere: no gradient reaches the hidden weights (claim 12).
        hidden = layers[(layers.quantity == "weight_grad_norm") & (layers.name != "head")]
        assert (hidden.value == 0).all()
        assert (layers[(layers.quantity == "saturated_frac")].value == 1).all()
    else:
        hidden = layers[(layers.quantity == "weight_grad_norm") & (layers.layer == 0)]
        assert (hidden.value > 0).all()
    slopes = layers[layers.quantity == "prelu_slope"]
    assert (len(slopes) > 0) == (activation == "prelu")


@pytest.mark.parametrize("init", sorted(inits.INITIALIZERS))
def test_every_initializer_runs(make_run_config, init):
    _, info, record = train_and_read(make_run_config, tiny(f"model.init={init}", "model.init_gain=1.3",
                                                           "model.width=16"))
    assert info["status"] == "ok"
    assert np.isfinite(record.steps.loss).all()
    # Step 0 weight norms follow the initializer: ||W||_F ~ std * sqrt(fan_in * fan_out).
    layer1 = _value(record.layers, 0, 1, "weight_norm")
    expected = inits.weight_std(init, 16, 16, 1.3, 0.01) * 16
    assert layer1 == pytest.approx(expected, rel=0.25)


def test_adam_momentum_and_copy_task(make_run_config):
    _, info, record = train_and_read(make_run_config, [
        "model=lstm", "data=copy", "data.length=4", "data.copy_symbols=2", "data.n_train=32",
        "data.n_test=16", "train.batch_size=8", "train.max_steps=3", "model.width=8", "optim=adam", "device=cpu"])
    assert info["status"] == "ok" and info["metric"] == "accuracy"
    assert info["chance"] == pytest.approx(1 / 8)
    assert record.timesteps.t.max() == 4 + 2 * 2
    _, info, _ = train_and_read(make_run_config, tiny("optim.momentum=0.9", "optim.weight_decay=0.01"), "mom")
    assert info["status"] == "ok"


# --------------------------------------------------------------------------- divergence


def test_divergence_is_a_result(make_run_config):
    overrides = tiny("model.init=normal", "model.init_std=1", "optim.lr=1e4", "model.width=32",
                     "train.max_steps=50", "train.batch_size=16")
    cfg, info, record = train_and_read(make_run_config, overrides)
    assert info["status"] == "diverged"
    step = info["diverged_step"]
    assert isinstance(step, int) and 0 <= step < 50
    steps = record.steps
    assert steps.step.tolist() == list(range(step + 1))  # rows end at the diverged step
    last = steps.iloc[-1]
    assert not (math.isfinite(last.loss) and math.isfinite(last.grad_norm))
    assert np.isfinite(steps.loss.iloc[:-1]).all()
    assert record.info["status"] == "diverged" and record.info["diverged_step"] == step
    assert record.info["final_train_loss"] is None
    assert json.loads((Path(cfg.out) / layout.INFO_FILE).read_text())["diverged_step"] == step
    assert (record.layers.step < step).all()  # the diverged step is not probed


def test_run_diverged_by_its_last_update_has_no_accuracy_or_loss(make_run_config):
    """One step at lr 1e30 sends the weights to ~1e30: the outputs overflow, and the argmax of
    such outputs (a class index all the same) must not become a test accuracy."""
    cfg, info, record = train_and_read(make_run_config, tiny("model.activation=relu", "optim.lr=1e30",
                                                             "train.max_steps=1", "train.epochs=1"))
    assert info["status"] == "diverged" and info["diverged_step"] == 1
    for key in ("test_loss", "test_metric", "test_accuracy", "final_train_loss", "final_train_metric"):
        assert record.info[key] is None, key
    evaluated = record.steps.dropna(subset=["test_metric"])
    assert evaluated.empty and record.steps.test_loss.isna().all()


def test_evaluate_of_non_finite_outputs_is_nan():
    data = fake_dataset(n=16, input_dim=4, output_dim=3)
    model = torch.nn.Linear(4, 3)
    with torch.no_grad():
        model.weight.fill_(math.nan)
    loss, metric = loop.evaluate(model, data, data.x_test, data.y_test)
    assert math.isnan(loss) and math.isnan(metric)


def test_prelu_slope_at_step_zero_is_its_initial_value(make_run_config):
    _, _, record = train_and_read(make_run_config, tiny("model.activation=prelu", "model.slope=0.25",
                                                        "optim.lr=0.5", "probe=dense"))
    slopes = record.layers[record.layers.quantity == "prelu_slope"]
    assert (slopes[slopes.step == 0].value == 0.25).all() and len(slopes[slopes.step == 0]) == 3
    # Each later probe holds the slope before that step's update: it moved after step 0.
    assert (slopes[slopes.step == 2].value != 0.25).all()


def test_dead_units_use_a_probe_set_of_1024_training_examples(make_run_config):
    cfg, info, record = train_and_read(make_run_config, tiny("data.n_train=1500", "model.activation=relu",
                                                             "model.bias_init=-1.0"))
    x_train = make_dataset(cfg.data).x_train
    probe = loop.probe_set(x_train, cfg.seed)
    assert probe.shape[0] == 1024 and torch.equal(loop.probe_set(x_train, cfg.seed), probe)
    layers = record.layers
    dead = layers[layers.quantity == "dead_frac"]
    died = layers[layers.quantity == "died_frac"]
    # On the probe set's schedule (step 0, the last step, multiples of probe_set_every), fewer than probed.
    assert set(dead.step) == set(died.step) == probe_set_schedule(cfg.probe, info["steps"]) == {0, info["steps"] - 1}
    assert set(dead.step) < set(info["probe_steps"])
    assert (died[died.step == 0].value == 0).all()
    both = dead.merge(died, on=["step", "layer"], suffixes=("_dead", "_died"))
    assert len(both) == len(dead) and (both.value_died <= both.value_dead).all()
    assert info["underflow_probes"] == int((layers[layers.quantity == "underflow"].value == 1.0).sum())


def test_underflow_of_a_deep_sigmoid_net_is_counted_in_run_json(make_run_config):
    # 60 sigmoid layers (factor ~0.14 per layer): the input side's float32 gradients are 0.
    _, info, record = train_and_read(make_run_config, tiny("model.activation=sigmoid", "model.depth=60",
                                                           "train.max_steps=2"))
    layers = record.layers
    flags = layers[layers.quantity == "underflow"]
    assert set(flags.value) == {0.0, 1.0}
    assert info["underflow_probes"] == int((flags.value == 1.0).sum()) > 0
    assert flags[(flags.step == 0) & (flags.layer == 0)].value.item() == 1.0
    assert flags[(flags.step == 0) & (flags.name == "head")].value.item() == 0.0


def test_failed_training_is_recorded_then_raised(make_run_config, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(runner, "train_stack", boom)
    cfg = make_run_config(tiny())
    with pytest.raises(RuntimeError, match="simulated crash"):
        runner.run(cfg)
    record = records.read_run_record(cfg.out)
    assert record.info["status"] == "failed"
    assert "simulated crash" in record.info["error"]
    assert record.steps.empty and list(record.steps.columns) == list(layout.STEP_COLUMNS)


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("arch", ["mlp", "gru"])
def test_same_seed_same_record_different_seed_different_record(make_run_config, arch):
    base = tiny("probe=dense", "train.max_steps=4", *ARCHITECTURES[arch])
    _, _, a = train_and_read(make_run_config, [*base, "seed=1"], "a")
    _, _, b = train_and_read(make_run_config, [*base, "seed=1"], "b")
    _, _, c = train_and_read(make_run_config, [*base, "seed=2"], "c")
    pd.testing.assert_frame_equal(a.steps, b.steps)
    pd.testing.assert_frame_equal(a.layers, b.layers)
    if arch == "gru":
        pd.testing.assert_frame_equal(a.timesteps, b.timesteps)
    assert {k: v for k, v in a.info.items() if k not in ("wall_time_s", "files")} == {
        k: v for k, v in b.info.items() if k not in ("wall_time_s", "files")}
    # The tables are the same bytes (config.yaml differs: it names its own out).
    assert {k: v for k, v in a.info["files"].items() if k != layout.CONFIG_FILE} == {
        k: v for k, v in b.info["files"].items() if k != layout.CONFIG_FILE}
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(a.steps, c.steps)
    with pytest.raises(AssertionError):
        pd.testing.assert_frame_equal(a.layers, c.layers)


# --------------------------------------------------------------------------- physics


def _study(name: str) -> dict:
    return yaml.safe_load((Path(CONF_DIR) / "studies" / f"{name}.yaml").read_text())


def _factor_override(factor: str, value) -> str:
    """The Hydra override that sets a study's factor: its config group, or its config key."""
    if factor in names.GROUP_FACTORS:
        return f"{names.GROUP_FACTORS[factor]}={value}"
    return f"{names.FACTORS.get(factor, factor)}={'null' if value is None else value}"


def _study_run(make_run_config, study: str, cell: dict, name: str, extra=()):
    """A run of study ``study``'s full-size fixed settings and grid ``cell``, cut to step 0."""
    # The study's validation split (data.n_val, for per-cell tuning) does not fit the tiny
    # data set, and a step-0 measurement does not use it.
    fixed = {k: v for k, v in _study(study)["fixed"].items() if k != "data.n_val"}
    settings = {**fixed, **cell, "max_steps": 1}
    overrides = [_factor_override(k, v) for k, v in settings.items()]
    overrides += [*TINY_DATA, "device=cpu", *extra]
    cfg = make_run_config(overrides, name)
    assert cfg.train.max_steps == 1
    runner.run(cfg)
    return cfg, records.read_run_record(cfg.out)


def _backprop(record, depth):
    layers = record.layers
    rows = layers[(layers.step == 0) & (layers.quantity == "backprop_norm") & (layers.layer < depth)]
    return rows.set_index("layer").value.sort_index()


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_saturating_activations_vanish_through_depth(make_run_config, activation):
    cfg, record = _study_run(make_run_config, "depth_activation_init",
                             {"activation": activation, "init": "default", "depth": 30}, activation)
    assert cfg.model.depth == 30
    bp = _backprop(record, 30)
    assert len(bp) == 30 and (bp > 0).all()
    assert bp[0] * 100 < bp[29]


def test_relu_he_keeps_gradient_norm_across_depth(make_run_config):
    cfg, record = _study_run(make_run_config, "depth_activation_init",
                             {"activation": "relu", "init": "he_normal", "depth": 30}, "relu")
    bp = _backprop(record, 30)
    assert len(bp) == 30
    assert bp.max() < 3 * bp.min()


def test_lstm_carries_gradient_through_time_better_than_rnn(make_run_config):
    ratios = {}
    for model in ("rnn", "lstm"):
        cfg, record = _study_run(make_run_config, "memory", {"model": model, "data": "adding", "length": 50},
                                 model)
        assert cfg.data.length == 50 and cfg.model.activation == "tanh"
        ts = record.timesteps
        hidden = ts[(ts.step == 0) & (ts.quantity == "hidden_grad_norm")].set_index("t").value
        assert sorted(hidden.index) == list(range(1, 51))
        assert (hidden > 0).all()
        ratios[model] = hidden[50] / hidden[1]
        if model == "lstm":
            gates = set(ts.quantity)
            assert {"saturated_frac.input", "saturated_frac.forget", "saturated_frac.output"} <= gates
    assert ratios["rnn"] > 1e3
    assert ratios["lstm"] * 1e3 < ratios["rnn"]


# --------------------------------------------------------------------------- records


def _record_args(timesteps=True):
    steps = [{"step": 0, "epoch": 0, "loss": 1.0, "grad_norm": 2.0, "clipped": False, "lr": 0.1,
              "test_loss": math.nan, "test_metric": math.nan}]
    layers = [(0, 0, "hidden.0", "backprop_norm", 0.5)]
    ts = [(0, 1, "hidden_grad_norm", 0.25)] if timesteps else None
    return {"config": {"a": 1}, "info": {"status": "ok", "fingerprint": "f" * 16, "x": math.inf}, "step_rows": steps,
            "layer_rows": layers, "timestep_rows": ts}


def test_record_round_trip(tmp_path):
    out = records.write_run_record(tmp_path / "runs" / "cell", **_record_args())
    record = records.read_run_record(out)
    assert record.config == {"a": 1}
    assert record.info["status"] == "ok" and record.info["x"] is None  # non-finite -> null
    assert record.steps.loss.tolist() == [1.0] and math.isnan(record.steps.test_loss.iloc[0])
    assert record.layers.value.tolist() == [0.5]
    assert record.timesteps.value.tolist() == [0.25]
    assert sorted(p.name for p in tmp_path.joinpath("runs").iterdir()) == ["cell"]


def _fail_to_parquet(monkeypatch, after: int = 0):
    calls = {"n": 0}
    original = pd.DataFrame.to_parquet

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise OSError("disk full (simulated)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", flaky)


@pytest.mark.parametrize("after", [0, 1, 2])
def test_failed_write_leaves_no_record(tmp_path, monkeypatch, after):
    _fail_to_parquet(monkeypatch, after)
    parent = tmp_path / "runs"
    with pytest.raises(OSError, match="simulated"):
        records.write_run_record(parent / "cell", **_record_args())
    assert not (parent / "cell").exists()
    assert [p.name for p in parent.iterdir() if not p.name.startswith(".")] == []
    assert list(parent.iterdir()) == []  # the hidden temporary is cleaned up as well


def test_failed_rewrite_keeps_the_previous_record(tmp_path, monkeypatch):
    out = records.write_run_record(tmp_path / "cell", **_record_args())
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _fail_to_parquet(monkeypatch, 1)
    args = _record_args()
    args["config"] = {"a": 2}
    with pytest.raises(OSError):
        records.write_run_record(out, **args)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["cell"]


def test_runner_write_failure_leaves_no_record(make_run_config, monkeypatch):
    cfg = make_run_config(tiny())
    _fail_to_parquet(monkeypatch)
    with pytest.raises(OSError):
        runner.run(cfg)
    parent = Path(cfg.out).parent
    assert not Path(cfg.out).exists()
    assert [p for p in parent.iterdir() if not p.name.startswith(".")] == []


def test_rewrite_replaces_the_record(tmp_path):
    out = records.write_run_record(tmp_path / "cell", **_record_args(timesteps=True))
    args = _record_args(timesteps=False)
    args["config"] = {"a": 3}
    records.write_run_record(out, **args)
    record = records.read_run_record(out)
    assert record.config == {"a": 3} and record.timesteps is None
    assert [p.name for p in tmp_path.iterdir()] == ["cell"]


def test_invalid_status_is_rejected(tmp_path):
    args = _record_args()
    args["info"] = {"status": "great"}
    with pytest.raises(ValueError, match="status"):
        records.write_run_record(tmp_path / "cell", **args)
    assert not (tmp_path / "cell").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing", "bad-status", "not-an-object"])
def test_corrupted_run_json_raises_record_error_naming_the_file(tmp_path, damage):
    out = records.write_run_record(tmp_path / "cell", **_record_args())
    info = out / layout.INFO_FILE
    if damage == "truncated":
        info.write_text(info.read_text()[:20])
    elif damage == "garbage":
        info.write_bytes(b"\x00\xffnot json")
    elif damage == "missing":
        info.unlink()
    elif damage == "not-an-object":
        info.write_text("[1, 2]")
    else:
        info.write_text(json.dumps({"status": "finished"}))
    with pytest.raises(RecordError) as err:
        records.read_run_record(out)
    assert str(info) in str(err.value)
    assert records.read_info(out) is None or damage == "bad-status"


@pytest.mark.parametrize("name", [layout.STEPS_FILE, layout.LAYERS_FILE, layout.TIMESTEPS_FILE,
                                  layout.CONFIG_FILE])
def test_corrupted_table_raises_record_error_naming_the_file(tmp_path, name):
    out = records.write_run_record(tmp_path / "cell", **_record_args())
    (out / name).write_text(": [unbalanced" if name == layout.CONFIG_FILE else "not parquet")
    with pytest.raises(RecordError) as err:
        records.read_run_record(out)
    assert str(out / name) in str(err.value)


def test_table_rewritten_after_the_record_is_rejected(tmp_path):
    # A readable table that is not the one run.json states (here: a column dropped) is damage.
    out = records.write_run_record(tmp_path / "cell", **_record_args())
    pd.read_parquet(out / layout.LAYERS_FILE).drop(columns=["quantity"]).to_parquet(out / layout.LAYERS_FILE)
    with pytest.raises(RecordError, match="SHA-256") as err:
        records.read_run_record(out)
    assert str(out / layout.LAYERS_FILE) in str(err.value)


# --------------------------------------------------------------------------- data and steps


@pytest.mark.parametrize(("n_train", "n_test"), [(128, 64), (37, 11)])
def test_mnist1d_sizes_are_exact_and_cached(gradatlas_cache, n_train, n_test):
    cfg = config.DataConfig(n_train=n_train, n_test=n_test, cache_dir=str(gradatlas_cache))
    first = make_dataset(cfg)
    assert first.x_train.shape == (n_train, 40) and first.x_test.shape == (n_test, 40)
    assert first.y_train.shape == (n_train,) and int(first.y_train.max()) < 10
    cached = list(Path(gradatlas_cache).glob("mnist1d-*.npz"))
    assert cached
    again = make_dataset(cfg)
    assert torch.equal(first.x_train, again.x_train) and torch.equal(first.y_test, again.y_test)
    seq = make_dataset(config.DataConfig(name="mnist1d_seq", n_train=n_train, n_test=n_test,
                                         cache_dir=str(gradatlas_cache)))
    assert torch.equal(seq.x_train[..., 0], first.x_train) and seq.sequence and seq.input_dim == 1


def test_adding_problem_targets_are_the_marked_sums():
    x, y = adding_problem(50, 12, torch.Generator().manual_seed(0))
    assert x.shape == (50, 12, 2) and y.shape == (50, 1)
    markers = x[..., 1]
    assert (markers.sum(dim=1) == 2).all()
    assert (markers[:, :6].sum(dim=1) == 1).all()  # one mark in each half
    torch.testing.assert_close(y[:, 0], (x[..., 0] * markers).sum(dim=1))


def test_copy_task_layout():
    x, y = copy_task(20, delay=5, symbols=3, alphabet=4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (20, 5 + 6, 6) and y.shape == (20, 3)
    tokens = x.argmax(dim=-1)
    assert torch.equal(tokens[:, :3], y)
    assert (tokens[:, 3 + 5 - 1] == 5).all()  # delimiter
    blanks = torch.ones(11, dtype=torch.bool)
    blanks[:3] = False
    blanks[7] = False
    assert (tokens[:, blanks] == 4).all()


@pytest.mark.parametrize(("epochs", "n_train", "batch", "max_steps", "expected"), [
    (3, 128, 32, None, 12), (3, 128, 32, 5, 5), (1, 100, 32, None, 3), (2, 10, 10, 100, 2)])
def test_total_steps(epochs, n_train, batch, max_steps, expected):
    cfg = config.RunConfig(train=config.TrainConfig(epochs=epochs, batch_size=batch, max_steps=max_steps),
                           data=config.DataConfig(n_train=n_train))
    assert loop.total_steps(cfg, n_train) == expected


def test_epochs_and_evaluation(make_run_config):
    _, info, record = train_and_read(make_run_config, [
        *TINY_MLP[:-1], "train.max_steps=null", "train.epochs=2", "train.batch_size=64", "device=cpu"])
    steps = record.steps
    assert steps.epoch.tolist() == [0, 0, 1, 1] and info["steps"] == 4
    evaluated = steps[steps.test_metric.notna()]
    assert evaluated.step.tolist() == [1, 3]  # the end of every epoch
    assert info["test_metric"] == pytest.approx(evaluated.test_metric.iloc[-1])
    assert 0 <= info["test_accuracy"] <= 1

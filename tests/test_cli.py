"""The command line, ``python -m gradatlas.run.train key=value ...``, run as a subprocess.

Each invocation takes a few seconds (Python, Hydra and torch start-up), so all of them run
once per module, two at a time, in their own empty working directories; the tests then
inspect the results.
"""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import SUBPROCESS_ENV, TINY_DATA, run_config

from gradatlas.core import layout
from gradatlas.run import config, records, runner
from gradatlas.run.data import make_dataset
from gradatlas.run.models import make_model

OUT = "out/run"  # relative to each invocation's working directory

# name -> (overrides, fragments that stderr must contain)
BAD = {
    "activation": (["model.activation=softsign"], ["model.activation", "softsign", "relu", "gelu"]),
    "init": (["model.init=glorot"], ["model.init", "glorot", "he_normal"]),
    "model": (["model=transformer"], ["model/transformer", "lstm"]),
    "data": (["data=cifar"], ["data/cifar", "adding"]),
    "depth": (["model.depth=0"], ["model.depth", "0"]),
    "width": (["model.width=0"], ["model.width", "0"]),
    "lr": (["optim.lr=-1"], ["optim.lr", "-1"]),
    "clip_value": (["train.clip_value=0"], ["train.clip_value", "0"]),
    "length": (["data=adding", "data.length=0", "model=rnn"], ["data.length", "0"]),
    "nonexistent-key": (["model.foo=1"], ["model.foo"]),
    "malformed-override": (["model.depth=[1"], ["[1", "override"]),
    "lr-nan": (["optim.lr=nan"], ["optim.lr", "finite", "nan"]),
    "gain-inf": (["model.init_gain=inf"], ["model.init_gain", "finite", "inf"]),
    "seed-negative": (["seed=-1"], ["seed", "-1"]),
}
# Errors Hydra finds itself, before gradatlas sees the config (its own message, no prefix).
HYDRA_ERRORS = ("model", "data", "nonexistent-key", "malformed-override")

MLP_RUN = ["model=mlp", "model.depth=3", "model.width=16", "train.max_steps=5", "device=cpu",
           "train.batch_size=32", *TINY_DATA]
SEQ_T = 5
GOOD = {
    "mlp": MLP_RUN,
    **{name: [f"model={name}", "model.width=8", "data=adding", f"data.length={SEQ_T}", "data.n_train=64",
              "data.n_test=32", "train.batch_size=16", "train.max_steps=3", "device=cpu"]
       for name in ("gru", "lstm")},  # the vanilla RNN's record is checked in test_training
}
GATES = {"gru": {"reset", "update"}, "lstm": {"input", "forget", "output"}}


@dataclass
class Invocation:
    overrides: list[str]
    cwd: Path
    returncode: int
    stdout: str
    stderr: str

    @property
    def out(self) -> Path:
        return self.cwd / OUT


def _invoke(overrides: list[str], cwd: Path, prepare=None) -> Invocation:
    cwd.mkdir(parents=True, exist_ok=True)
    if prepare is not None:
        prepare(cwd)
    env = {**os.environ, **SUBPROCESS_ENV}
    done = subprocess.run([sys.executable, "-m", "gradatlas.run.train", *overrides, f"out={OUT}"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    return Invocation(overrides, cwd, done.returncode, done.stdout, done.stderr)


def _invoke_all(cases: dict[str, list[str]], root: Path) -> dict[str, Invocation]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_invoke, overrides, root / name) for name, overrides in cases.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory) -> dict[str, Invocation]:
    return _invoke_all({name: overrides for name, (overrides, _) in BAD.items()}, tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="module")
def good_runs(tmp_path_factory) -> dict[str, Invocation]:
    return _invoke_all(GOOD, tmp_path_factory.mktemp("good"))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_fails_cleanly(bad_runs, case):
    run = bad_runs[case]
    assert run.returncode != 0, run.stdout
    for fragment in BAD[case][1]:
        assert fragment in run.stderr, f"{fragment!r} not in stderr:\n{run.stderr}"
    assert "Traceback" not in run.stderr  # a message, not a crash
    assert not run.out.exists()
    assert sorted(p.name for p in run.cwd.iterdir()) == []  # no out/, no .hydra/, no logs


def test_config_errors_exit_with_usage_status(bad_runs):
    # Every configuration error exits 2, whether Hydra or gradatlas's validation finds it;
    # the validation's message is one line.
    for case, run in bad_runs.items():
        assert run.returncode == 2, (case, run.stderr)
        if case not in HYDRA_ERRORS:
            assert run.stderr.strip().startswith("gradatlas.run.train: error:"), run.stderr


# --------------------------------------------------------------------------- good runs


def test_mlp_run_writes_the_record(good_runs):
    run = good_runs["mlp"]
    assert run.returncode == 0, run.stderr
    info = records.read_run_record(run.out).info
    # The one-line summary reports what run.json holds.
    assert run.stdout.startswith(f"ok: accuracy={info['test_metric']}")
    assert run.stdout.rstrip().endswith(f"on cpu -> {OUT}")
    assert sorted(p.name for p in run.cwd.iterdir()) == ["out"]
    assert sorted(p.name for p in run.out.iterdir()) == sorted(
        [layout.CONFIG_FILE, layout.INFO_FILE, layout.STEPS_FILE, layout.LAYERS_FILE])
    assert sorted(p.name for p in run.out.parent.iterdir()) == ["run"]  # no leftover temporaries


def test_mlp_config_yaml_is_the_resolved_config(good_runs):
    run = good_runs["mlp"]
    written = yaml.safe_load((run.out / layout.CONFIG_FILE).read_text())
    expected = config.to_container(run_config([*MLP_RUN, f"out={OUT}"]))
    assert written == expected
    assert written["model"]["depth"] == 3 and written["model"]["width"] == 16
    assert written["train"]["max_steps"] == 5


def test_mlp_run_json(good_runs):
    run = good_runs["mlp"]
    record = records.read_run_record(run.out)
    info = record.info
    assert info["status"] == "ok"
    assert info["factors"]["model"] == "mlp" and info["factors"]["depth"] == 3 and info["factors"]["width"] == 16
    assert info["factors"]["activation"] == "relu"
    assert info["seed"] == 0 and info["steps"] == 5 and info["diverged_step"] is None
    assert isinstance(info["final_train_loss"], float) and math.isfinite(info["final_train_loss"])
    # 10 classes: the loss of a fresh net is near ln 10, the accuracy a share of 64 test examples.
    assert 0.5 < info["final_train_loss"] < 5
    assert info["metric"] == "accuracy" and 0 <= info["test_metric"] <= 1
    assert info["test_metric"] * 64 == pytest.approx(round(info["test_metric"] * 64), abs=1e-6)
    assert info["test_accuracy"] == info["test_metric"]
    assert info["test_metric"] == pytest.approx(record.steps.test_metric.iloc[-1])
    assert 0 < info["wall_time_s"] < 300
    assert info["device"] == "cpu"
    assert info["versions"]["torch"] == torch.__version__
    assert {"python", "numpy", "pandas", "pyarrow", "hydra-core"} <= set(info["versions"])
    assert "git_commit" in info
    assert info["git_commit"] is None or len(info["git_commit"].removesuffix("-dirty")) == 40


def test_mlp_steps_parquet(good_runs):
    steps = pd.read_parquet(good_runs["mlp"].out / layout.STEPS_FILE)
    assert list(steps.columns[:6]) == ["step", "epoch", "loss", "grad_norm", "clipped", "lr"]
    assert {"test_loss", "test_metric"} <= set(steps.columns)
    assert steps.step.tolist() == [0, 1, 2, 3, 4]
    assert (steps.lr == 0.05).all() and not steps.clipped.any()
    assert steps.loss.notna().all() and (steps.grad_norm > 0).all()


def test_mlp_layers_parquet(good_runs):
    run = good_runs["mlp"]
    layers = pd.read_parquet(run.out / layout.LAYERS_FILE)
    assert list(layers.columns) == ["step", "layer", "name", "quantity", "value"]
    assert 0 in set(layers.step)
    assert set(layers.step) == {0, 1, 2, 4}
    at0 = layers[layers.step == 0]
    names = at0.drop_duplicates("layer").set_index("layer").name.to_dict()
    assert names == {0: "hidden.0", 1: "hidden.1", 2: "hidden.2", 3: "head"}
    contract = {"weight_grad_norm", "backprop_norm", "act_mean", "act_std", "saturated_frac", "dead_frac",
                "died_frac", "weight_norm", "update_ratio", "underflow"}
    for layer in range(3):
        assert contract <= set(at0[at0.layer == layer].quantity)
    # Step 0 is the network at initialization: the same weights as a model built in-process.
    cfg = run_config([*MLP_RUN, f"out={OUT}"])
    runner.seed_everything(cfg.seed)
    model = make_model(make_dataset(cfg.data), cfg.model)
    for layer, linear in enumerate([*model.linears, model.head]):
        recorded = at0[(at0.layer == layer) & (at0.quantity == "weight_norm")].value.item()
        assert recorded == pytest.approx(torch.linalg.norm(linear.weight.detach()).item(), rel=1e-6)


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_recurrent_run_writes_timesteps(good_runs, name):
    run = good_runs[name]
    assert run.returncode == 0, run.stderr
    record = records.read_run_record(run.out)
    assert record.info["status"] == "ok" and record.info["metric"] == "mse"
    ts = pd.read_parquet(run.out / layout.TIMESTEPS_FILE)
    assert list(ts.columns) == ["step", "t", "quantity", "value"]
    probed = set(record.layers.step)
    assert set(ts.step) == probed and 0 in probed
    for step in probed:
        hidden = ts[(ts.step == step) & (ts.quantity == "hidden_grad_norm")]
        assert sorted(hidden.t) == list(range(1, SEQ_T + 1))
        assert (hidden.value > 0).all()
        # The layer's backprop norm runs over all h_t together: between max_t and sum_t.
        layer = record.layers[(record.layers.step == step) & (record.layers.layer == 0)
                              & (record.layers.quantity == "backprop_norm")].value.item()
        assert hidden.value.max() * (1 - 1e-6) <= layer <= hidden.value.sum() * (1 + 1e-6)
    saturation = {q.split(".", 1)[1] for q in ts.quantity if q.startswith("saturated_frac.")}
    assert saturation == GATES[name]
    fractions = ts[ts.quantity.str.startswith("saturated_frac.")]
    assert ((fractions.value >= 0) & (fractions.value <= 1)).all()
    for gate in GATES[name]:
        assert sorted(ts[(ts.step == 0) & (ts.quantity == f"saturated_frac.{gate}")].t) == list(range(1, SEQ_T + 1))


# --------------------------------------------------------------------------- what out= may replace


def _user_directory(cwd: Path) -> None:
    (cwd / OUT / ".git").mkdir(parents=True)
    (cwd / OUT / "thesis.tex").write_text("precious")
    (cwd / OUT / ".git" / "HEAD").write_text("ref: refs/heads/main\n")


def _user_file(cwd: Path) -> None:
    (cwd / "out").mkdir()
    (cwd / OUT).write_text("precious")


@functools.lru_cache(maxsize=1)
def _another_config() -> dict:
    # Composed once, in the test's thread: Hydra's compose API is not thread-safe.
    return config.to_container(run_config([*MLP_RUN, "model.depth=2", f"out={OUT}"]))


def _record_of_another_config(cwd: Path) -> None:
    records.write_run_record(cwd / OUT, _another_config(), {"status": "ok", "fingerprint": "f" * 16}, [], [], None)


def _file_in_the_way(cwd: Path) -> None:
    (cwd / "out").write_text("a file where the record's parent directory should be")


# name -> (prepare the working directory, extra overrides, expected exit status, stderr fragments)
TARGETS = {
    "user-directory": (_user_directory, [], 2, ["out/run", "not part of a run record", "thesis.tex"]),
    "user-file": (_user_file, [], 2, ["out/run", "not a run-record directory"]),
    "other-config": (_record_of_another_config, [], 2, ["out/run", "another config", "overwrite=true"]),
    "other-config-overwrite": (_record_of_another_config, ["overwrite=true"], 0, []),
    "unwritable": (_file_in_the_way, [], 2, ["out/run", "cannot write"]),
}


@pytest.fixture(scope="module")
def target_runs(tmp_path_factory) -> dict[str, tuple[Invocation, dict[str, bytes]]]:
    """Each case's invocation, and its working directory's files before it ran."""
    root = tmp_path_factory.mktemp("targets")
    before = {}
    _another_config()

    def invoke(name: str) -> Invocation:
        prepare, extra, _, _ = TARGETS[name]

        def prepare_and_remember(cwd: Path) -> None:
            prepare(cwd)
            before[name] = _tree(cwd)

        return _invoke([*MLP_RUN, *extra], root / name, prepare_and_remember)

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(zip(TARGETS, pool.map(invoke, TARGETS)))
    return {name: (run, before[name]) for name, run in runs.items()}


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", sorted(TARGETS))
def test_out_replaces_only_a_record(target_runs, case):
    run, before = target_runs[case]
    _, _, status, fragments = TARGETS[case]
    assert run.returncode == status, run.stderr
    for fragment in fragments:
        assert fragment in run.stderr, f"{fragment!r} not in stderr:\n{run.stderr}"
    if status == 2:
        assert "Traceback" not in run.stderr
        assert run.stdout == ""  # refused before training: no summary line
        assert _tree(run.cwd) == before  # left untouched, nothing added
    else:
        record = records.read_run_record(run.out)
        assert record.config["model"]["depth"] == 3 and record.info["fingerprint"] != "f" * 16


def test_a_record_being_written_is_not_written_twice(tmp_path):
    # Another process holds the record's lock (as a run writing it does): refused at once.
    with records.record_lock(tmp_path / "busy" / OUT):
        run = _invoke(MLP_RUN, tmp_path / "busy")
    assert run.returncode == 2, run.stderr
    assert f"pid {os.getpid()}" in run.stderr and "Traceback" not in run.stderr
    assert not run.out.exists()


def test_two_runs_with_one_out_keep_one_result(tmp_path):
    # Two configs, one out=, started together: one writes its record, the other is refused
    # (the record is busy, or by then holds another config); no result is lost silently.
    cwd = tmp_path / "race"
    cwd.mkdir()
    env = {**os.environ, **SUBPROCESS_ENV}
    procs = [subprocess.Popen([sys.executable, "-m", "gradatlas.run.train", *MLP_RUN, f"model.depth={depth}", f"out={OUT}"],
                              cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for depth in (2, 4)]
    results = [(proc.wait(timeout=300), proc.stderr.read()) for proc in procs]
    statuses = [status for status, _ in results]
    assert sorted(statuses) == [0, 2], results
    winner = (2, 4)[statuses.index(0)]
    assert records.read_run_record(cwd / OUT).config["model"]["depth"] == winner
    assert "Traceback" not in results[statuses.index(2)][1]

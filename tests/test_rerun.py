"""Hydra's command line beyond one run: multirun, ``--help`` and reruns from a record's ``command``."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import SUBPROCESS_ENV, TINY_MLP, run_config

from gradatlas.core import layout
from gradatlas.run import records, rerun
from gradatlas.run.config import fingerprint
from gradatlas.run.train import config_groups
from gradatlas.workflow.batch import run_batch



def _python(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **SUBPROCESS_ENV}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _same_record(a: Path, b: Path) -> None:
    """The two records agree in everything the run determines (not in time, place or path)."""
    first, second = records.read_run_record(a), records.read_run_record(b)
    for key in ("status", "fingerprint", "command", "factors", "seed", "steps", "final_train_loss", "test_loss",
                "test_metric", "diverged_step", "n_params"):
        assert first.info[key] == second.info[key], key
    unplaced = {"out": None, "overwrite": None, "device": None}  # not part of the outcome (fingerprint)
    assert {**first.config, **unplaced} == {**second.config, **unplaced}
    pd.testing.assert_frame_equal(first.steps, second.steps)
    pd.testing.assert_frame_equal(first.layers, second.layers)


def test_multirun_gives_every_job_its_own_record(tmp_path):
    done = _python(["-m", "gradatlas.run.train", "-m", *TINY_MLP, "model.activation=relu,tanh", "seed=0,1",
                    "out=sweep"], tmp_path)
    assert done.returncode == 0, done.stderr
    sweep = tmp_path / "sweep"
    found = sorted(str(p.parent.relative_to(sweep)) for p in sweep.rglob(layout.INFO_FILE))
    assert found == [f"model.activation={a}/seed={s}" for a in ("relu", "tanh") for s in (0, 1)]
    for path in found:
        info = records.read_info(sweep / path)
        activation, seed = (part.split("=")[1] for part in path.split("/"))
        assert info["factors"]["activation"] == activation and info["seed"] == int(seed)
    # Hydra's own file goes with the records; nothing lands in the working directory.
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["sweep"]
    assert (sweep / "multirun.yaml").exists()


def test_help_lists_only_the_groups_of_a_run(tmp_path):
    done = _python(["-m", "gradatlas.run.train", "--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    groups = done.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    listed = {line.split(":")[0]: line.split(": ")[1].split(", ") for line in groups.splitlines() if ": " in line}
    assert listed == config_groups()
    assert set(listed) == {"model", "data", "optim", "probe"}  # no `studies`, the workflow's grids
    assert listed["model"] == ["gru", "lstm", "mlp", "resmlp", "rnn"]
    assert list(tmp_path.iterdir()) == []


def test_command_reproduces_the_config():
    cfg = run_config([*TINY_MLP, "model=lstm", "data=adding", "data.length=7", "optim=adam", "optim.lr=3e-4",
                      "train.clip=norm", "model.bias_init=0.0", "probe=dense"], out=Path("x"))
    again = run_config(rerun.command(cfg), out=Path("x"))
    assert fingerprint(again) == fingerprint(cfg)
    assert dataclasses.replace(again, device=cfg.device) == cfg  # where it runs is the rerun's choice


@pytest.mark.parametrize("value", ["relu", "1", "true", "null", "a b", "it's", "x,y", "[1]", 0.1, 1e-5, None, True, 3])
def test_hydra_value_round_trips(value):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(f"k={rerun.hydra_value(value)}").value()
    assert parsed == value and type(parsed) is type(value)


def test_rerun_of_a_cli_record_is_identical(tmp_path):
    first = _python(["-m", "gradatlas.run.train", *TINY_MLP, "model.activation=tanh", "seed=3", "out=first"], tmp_path)
    assert first.returncode == 0, first.stderr
    again = _python(["-m", "gradatlas.run.rerun", "first", "again"], tmp_path)
    assert again.returncode == 0, again.stderr
    _same_record(tmp_path / "first", tmp_path / "again")
    # A rerun never replaces a record.
    refused = _python(["-m", "gradatlas.run.rerun", "first", "first"], tmp_path)
    assert refused.returncode == 2 and "exists" in refused.stderr


def test_rerun_of_a_study_record_is_identical(tmp_path):
    # A study run's record: its scale's settings (here data.n_train) are not in the factors,
    # yet the stored command reproduces it outside the workflow.
    study = tmp_path / "tiny.yaml"
    study.write_text(yaml.safe_dump({
        "fixed": {"model": "mlp", "depth": 3, "width": 8, "batch_size": 32, "max_steps": 3},
        "grid": {"activation": ["tanh"]},
        "scales": {"smoke": {"fixed": {"data.n_train": 96, "data.n_test": 64}}},
    }))
    manifest = run_batch(str(study), "smoke", [0], str(tmp_path / "results"), device="cpu")
    original = tmp_path / "results" / "smoke" / manifest["runs"][0]["path"]
    assert records.read_run_record(original).config["data"]["n_train"] == 96
    again = _python(["-m", "gradatlas.run.rerun", str(original), "again", "device=cpu"], tmp_path)
    assert again.returncode == 0, again.stderr
    _same_record(original, tmp_path / "again")


def test_rerun_without_a_command_says_how(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / layout.INFO_FILE).write_text(json.dumps({"status": "ok"}))
    done = _python(["-m", "gradatlas.run.rerun", "old", "new"], tmp_path)
    assert done.returncode == 2 and "--config-dir" in done.stderr
    assert not (tmp_path / "new").exists()

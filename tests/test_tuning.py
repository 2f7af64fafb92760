"""Per-cell selection on a validation split: the split, the selection rule, tuned studies,
and (on the session's smoke run) that tuned runs train with what was chosen."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import TINY_MLP, fake_dataset, run_config

from gradatlas.run.config import ConfigError, DataConfig
from gradatlas.run.data import hold_out_validation, make_dataset
from gradatlas.workflow.studies import SWEEP_SEED_OFFSET, StudyError, load_study
from gradatlas.workflow.tuning import select_trials

STUDIES = Path(__file__).resolve().parents[1] / "conf" / "studies"


def _row(cell, lr, seed, val, status="ok", metric="accuracy", **extra):
    return {"cell": cell, "trial": {"lr": lr}, "seed": seed, "status": status, "metric": metric,
            "val_metric": val, **extra}


# --- the validation split -------------------------------------------------------------------

def test_validation_is_held_out_of_training_and_test_is_untouched():
    data = fake_dataset(n=20)
    split = hold_out_validation(data, 5)
    assert len(split.x_train) == 15 and len(split.x_val) == 5
    assert torch.equal(torch.cat([split.x_train, split.x_val]), data.x_train)
    assert torch.equal(split.x_test, data.x_test)
    assert hold_out_validation(data, 0) is data


def test_mnist1d_validation_rows_are_not_trained_on():
    full = make_dataset(DataConfig(n_train=200, n_test=50))
    split = make_dataset(DataConfig(n_train=200, n_test=50, n_val=40))
    trained = {tuple(row.tolist()) for row in split.x_train}
    assert not any(tuple(row.tolist()) in trained for row in split.x_val)
    assert torch.equal(split.x_test, full.x_test)


@pytest.mark.parametrize("overrides, message", [
    (("data.n_val=128",), "must be below data.n_train"),
    (("data.n_val=-1",), "n_val must be >= 0"),
    (("data.n_val=100",), "exceeds the training examples"),   # 28 left, batch 32
])
def test_bad_validation_sizes_are_refused(overrides, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        run_config([*TINY_MLP, *overrides], tmp_path / "run")


# --- the selection rule ---------------------------------------------------------------------

def test_the_best_mean_validation_accuracy_wins():
    rows = [_row("c", 0.01, 0, 0.5), _row("c", 0.01, 1, 0.7), _row("c", 0.1, 0, 0.62), _row("c", 0.1, 1, 0.62)]
    chosen = select_trials(rows)["c"]
    assert chosen["chosen"] == {"lr": 0.1}
    assert [t["val_metric"] for t in chosen["trials"]] == pytest.approx([0.6, 0.62])


def test_mse_is_minimised():
    rows = [_row("c", 0.01, 0, 0.05, metric="mse"), _row("c", 0.1, 0, 0.2, metric="mse")]
    assert select_trials(rows)["c"]["chosen"] == {"lr": 0.01}


def test_a_trial_that_diverges_on_any_seed_loses():
    rows = [_row("c", 0.01, 0, 0.3), _row("c", 0.01, 1, 0.3),
            _row("c", 0.1, 0, 0.9), _row("c", 0.1, 1, None, status="diverged")]
    chosen = select_trials(rows)["c"]
    assert chosen["chosen"] == {"lr": 0.01}
    assert chosen["trials"][1]["failed"] == 1 and chosen["trials"][1]["val_metric"] == pytest.approx(0.9)


def test_ties_go_to_the_trial_listed_first_and_all_diverged_still_chooses():
    assert select_trials([_row("c", 0.01, 0, 0.5), _row("c", 0.1, 0, 0.5)])["c"]["chosen"] == {"lr": 0.01}
    rows = [_row("c", 0.01, 0, None, status="diverged"), _row("c", 0.1, 0, None, status="failed")]
    chosen = select_trials(rows)["c"]
    assert chosen["chosen"] == {"lr": 0.01} and math.isnan(chosen["trials"][0]["val_metric"])


def test_the_test_split_plays_no_part():
    # The test metric favours lr 0.1; only validation decides.
    rows = [_row("c", 0.01, 0, 0.8, test_metric=0.1), _row("c", 0.1, 0, 0.4, test_metric=0.99)]
    assert select_trials(rows)["c"]["chosen"] == {"lr": 0.01}


def test_cells_are_chosen_independently():
    rows = [_row("a", 0.01, 0, 0.9), _row("a", 0.1, 0, 0.1), _row("b", 0.01, 0, 0.1), _row("b", 0.1, 0, 0.9)]
    chosen = select_trials(rows)
    assert chosen["a"]["chosen"] == {"lr": 0.01} and chosen["b"]["chosen"] == {"lr": 0.1}


# --- tuned studies --------------------------------------------------------------------------

def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tuned.yaml"
    path.write_text(text)
    return path


BASE = """
fixed: {model: mlp, data: mnist1d, width: 8, depth: 2, max_steps: 2, data.n_train: 256, data.n_test: 64, data.n_val: 64}
grid: {activation: [relu, tanh]}
scales: {smoke: {seeds: 2}}
"""


def test_a_tuned_study_plans_unprobed_sweep_runs_on_seeds_of_their_own(tmp_path):
    study = load_study(_write(tmp_path, BASE + "tune: {lr: [0.01, 0.1], init: [default, he_normal], seeds: 2}\n"), "smoke")
    assert len(study.runs) == 4 and len(study.sweep) == 2 * 4 * 2
    assert all(run.seed >= SWEEP_SEED_OFFSET for run in study.sweep)
    assert {run.seed for run in study.runs} == {0, 1}
    assert all(run.overrides()["probe"] == "off" for run in study.sweep)
    assert all(run.relpath.startswith("tuned/sweep/") for run in study.sweep)
    assert len({run.relpath for run in study.sweep}) == len(study.sweep)
    assert study.sweep[0].overrides()["lr"] == 0.01 and study.sweep[0].overrides()["init"] == "default"


@pytest.mark.parametrize("tune, message", [
    ("tune: {lr: [0.01]}", "at least two candidates"),
    ("tune: {lr: [0.01, 0.01]}", r"tune\.lr: .* has non-unique elements"),
    ("tune: {activation: [relu, tanh]}", "also sets activation"),
    ("tune: {seeds: 2}", "name at least one factor"),
    ("tune: {lr: [0.01, 0.1], seeds: 0}", r"tune\.seeds: 0 is less than the minimum of 1"),
    ("tune: {lr: [0.01, -1.0]}", "optim.lr"),
])
def test_bad_tuning_is_refused_naming_the_file(tmp_path, tune, message):
    with pytest.raises(StudyError, match=message) as err:
        load_study(_write(tmp_path, BASE + tune + "\n"), "smoke")
    assert "tuned.yaml" in str(err.value)


def test_tuning_needs_a_validation_split(tmp_path):
    text = BASE.replace(", data.n_val: 64", "") + "tune: {lr: [0.01, 0.1]}\n"
    with pytest.raises(StudyError, match="validation split"):
        load_study(_write(tmp_path, text), "smoke")


@pytest.mark.parametrize("name", ["depth_activation_init", "residual", "linear_step", "silu_relu"])
def test_the_studies_that_compare_training_tune_per_cell(name):
    for scale in ("smoke", "quick", "full", "cluster"):
        study = load_study(STUDIES / f"{name}.yaml", scale)
        assert study.tune is not None and "lr" in dict(study.tune.choices)


# --- the workflow ---------------------------------------------------------------------------

@pytest.mark.workflow
def test_tuned_runs_train_with_the_choice_made_on_validation(smoke):
    runs = pd.read_parquet(smoke / "results" / "smoke" / "summary" / "runs.parquet")
    tuning = sorted((smoke / "results" / "smoke" / "tuning").glob("*.json"))
    assert {p.stem for p in tuning} == {"depth_activation_init", "residual", "linear_step", "silu_relu"}
    for path in tuning:
        cells = json.loads(path.read_text())["cells"]
        study = runs[runs["study"] == path.stem]
        assert set(study["cell"]) == set(cells)
        for row in study.itertuples():
            for factor, value in cells[row.cell]["chosen"].items():
                assert getattr(row, factor) == value, (path.stem, row.cell, factor)
        # The study's own runs are probed and report a validation metric.
        assert study["val_metric"].notna().all()

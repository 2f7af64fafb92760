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

from gradatlas.core import layout
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
    ("tune: {momentum: [0.5, 2.0]}", r"optim.momentum must be in \[0, 1\)"),
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
    tuned = {path.stem for path in layout.CONF_DIR.glob("studies/*.yaml") if load_study(path, "smoke").tune}
    assert {p.stem for p in tuning} == tuned and {"depth_activation_init", "residual"} <= tuned
    for path in tuning:
        cells = json.loads(path.read_text())["cells"]
        study = runs[runs["study"] == path.stem]
        assert set(study["cell"]) == set(cells)
        for row in study.itertuples():
            for factor, value in cells[row.cell]["chosen"].items():
                assert getattr(row, factor) == value, (path.stem, row.cell, factor)
        # The study's own runs are probed and report a validation metric.
        assert study["val_metric"].notna().all()


# --- bracketing: margins, the mean over sweep seeds, extensions -----------------------------

from gradatlas.workflow import extend as extend_job  # noqa: E402
from gradatlas.workflow.studies import DEFAULT_EXTENSIONS, MIN_SWEEP_SEEDS  # noqa: E402
from gradatlas.workflow.tuning import EDGE, EXTENDED, INTERIOR, PENDING, TIED, extension_value  # noqa: E402


def _sweep(cell, scores: dict[float, list[float]]):
    """Rows of one cell: lr -> the validation accuracy on each sweep seed."""
    return [_row(cell, lr, SWEEP_SEED_OFFSET + seed, value) for lr, values in scores.items()
            for seed, value in enumerate(values)]


def test_the_mean_over_sweep_seeds_decides_where_one_seed_would_not():
    # Seed 0 alone prefers 0.01 (0.80 > 0.70); over both seeds 0.03 wins (0.70 > 0.55).
    rows = _sweep("c", {0.01: [0.80, 0.30], 0.03: [0.70, 0.70], 0.1: [0.20, 0.20]})
    assert select_trials([r for r in rows if r["seed"] == SWEEP_SEED_OFFSET])["c"]["chosen"] == {"lr": 0.01}
    choice = select_trials(rows, {"lr": [0.01, 0.03, 0.1]}, extend=2)["c"]
    assert choice["chosen"] == {"lr": 0.03} and choice["bracket"] == {"lr": INTERIOR} and not choice["extend"]
    assert choice["runner_up"] == {"lr": 0.01} and choice["margin"] == pytest.approx(0.70 - 0.55)


def test_the_margin_is_oriented_and_absent_where_the_runner_up_failed():
    mse = [_row("c", lr, 0, v, metric="mse") for lr, v in ((0.01, 0.4), (0.03, 0.1), (0.1, 0.25))]
    assert select_trials(mse, {"lr": [0.01, 0.03, 0.1]})["c"]["margin"] == pytest.approx(0.25 - 0.1)
    rows = [_row("c", 0.01, 0, 0.2), _row("c", 0.03, 0, 0.6), _row("c", 0.03, 1, 0.6),
            _row("c", 0.01, 1, None, status="diverged")]
    choice = select_trials(rows, {"lr": [0.01, 0.03]})["c"]
    assert choice["runner_up"] == {"lr": 0.01} and choice["margin"] is None


@pytest.mark.parametrize("scores, side", [
    ({0.01: [0.2, 0.3], 0.03: [0.4, 0.4], 0.1: [0.6, 0.5]}, "high"),
    ({0.01: [0.6, 0.5], 0.03: [0.4, 0.4], 0.1: [0.2, 0.3]}, "low"),
])
def test_an_end_chosen_outright_asks_for_an_extension(scores, side):
    choice = select_trials(_sweep("c", scores), {"lr": [0.01, 0.03, 0.1]}, extend=2)["c"]
    assert choice["bracket"] == {"lr": PENDING} and choice["extend"] == {"lr": side}
    # One step beyond, at the ratio of the two candidates at that end, to 3 figures.
    expected = 0.1 * 0.1 / 0.03 if side == "high" else 0.01 * 0.01 / 0.03
    assert extension_value([0.01, 0.03, 0.1], side) == pytest.approx(expected, rel=5e-3)
    assert extension_value([0.01, 0.03, 0.1], side) == (0.333 if side == "high" else 0.00333)


def test_an_end_chosen_only_by_the_tie_rule_is_not_extended_nor_a_name():
    # Constant predictions: the same accuracy at both ends, less inside.
    tied = select_trials(_sweep("c", {0.01: [0.094], 0.03: [0.086], 0.1: [0.094]}), {"lr": [0.01, 0.03, 0.1]}, 2)["c"]
    assert tied["chosen"] == {"lr": 0.01} and tied["bracket"] == {"lr": TIED} and not tied["extend"]
    rows = [{**_row("c", 0.01, 0, 0.2), "trial": {"lr": 0.01, "init": "he_normal"}},
            {**_row("c", 0.01, 0, 0.9), "trial": {"lr": 0.01, "init": "default"}},
            {**_row("c", 0.1, 0, 0.5), "trial": {"lr": 0.1, "init": "he_normal"}},
            {**_row("c", 0.1, 0, 0.4), "trial": {"lr": 0.1, "init": "default"}}]
    choice = select_trials(rows, {"lr": [0.01, 0.1], "init": ["he_normal", "default"]}, extend=2)["c"]
    assert choice["chosen"] == {"lr": 0.01, "init": "default"}
    assert choice["bracket"] == {"lr": PENDING} and choice["extend"] == {"lr": "low"}  # no bracket for init
    assert extend_job.tuning.extension_trials(choice, ["lr", "init"]) == [{"lr": 0.001, "init": "default"}]


def _study(tmp_path, extend=None):
    text = BASE + "tune: {lr: [0.01, 0.03, 0.1], seeds: 2" + (f", extend: {extend}" if extend is not None else "") + "}\n"
    return load_study(_write(tmp_path, text), "smoke")


def _bracket(study, peak):
    """extend.bracket on a synthetic response: validation accuracy 0.9 - 0.1 |log10(lr / peak)|
    (both cells), the sweep seeds adding +-0.01; returns the choices and the lrs trained."""
    def accuracy(lr, seed):
        return 0.9 - 0.1 * abs(math.log10(lr / peak)) + (0.01 if seed % 2 else -0.01)

    rows = [_row(run.cell, dict(run.trial)["lr"], run.seed, accuracy(dict(run.trial)["lr"], run.seed))
            for run in study.sweep]
    trained = []

    def train(planned, trials):
        assert all(run.relpath.startswith("tuned/sweep/") and run.seed >= SWEEP_SEED_OFFSET for run in planned)
        trained.extend((run.cell, trial["lr"], run.seed) for run, trial in zip(planned, trials))
        return [{"cell": run.cell, "trial": trial, "seed": run.seed} for run, trial in zip(planned, trials)]

    chosen, entries = extend_job.bracket(study, rows, train, lambda e: _row(
        e["cell"], e["trial"]["lr"], e["seed"], accuracy(e["trial"]["lr"], e["seed"])))
    assert len(entries) == len(trained)
    return chosen, trained


def test_an_interior_best_trains_no_extension(tmp_path):
    chosen, trained = _bracket(_study(tmp_path), peak=0.03)
    assert trained == [] and {c["bracket"]["lr"] for c in chosen.values()} == {INTERIOR}


@pytest.mark.parametrize("peak, extend, lrs, bracket", [
    # Above the list: 0.333 beats 0.1, then 1.11 (0.333^2 / 0.1) loses to 0.333: bracketed.
    (0.3, None, [0.333, 1.11], EXTENDED),
    # Below: 0.00333 beats 0.01, then 0.00111 loses to it.
    (0.004, None, [0.00111, 0.00333], EXTENDED),
    # Far above: each step wins, until the limit (DEFAULT_EXTENSIONS = 2 per side, or 1, or 0).
    (10.0, None, [0.333, 1.11], EDGE),
    (10.0, 1, [0.333], EDGE),
    (10.0, 0, [], EDGE),
])
def test_an_end_extends_step_by_step_on_every_sweep_seed_up_to_its_limit(tmp_path, peak, extend, lrs, bracket):
    study = _study(tmp_path, extend)
    assert study.tune.extend == (DEFAULT_EXTENSIONS if extend is None else extend) and DEFAULT_EXTENSIONS == 2
    chosen, trained = _bracket(study, peak=peak)
    seeds = {SWEEP_SEED_OFFSET, SWEEP_SEED_OFFSET + 1}
    assert set(chosen) == {run.cell for run in study.runs}
    for cell, choice in chosen.items():
        assert sorted({lr for c, lr, _ in trained if c == cell}) == lrs
        assert sorted((lr, seed) for c, lr, seed in trained if c == cell) == sorted((lr, s) for lr in lrs for s in seeds)
        assert choice["bracket"] == {"lr": bracket} and not choice["extend"]
        best = max([0.01, 0.03, 0.1, *lrs], key=lambda lr: -abs(math.log10(lr / peak)))
        assert choice["chosen"] == {"lr": best}
        assert len(choice["trials"]) == 3 + len(lrs) and all(t["runs"] == 2 for t in choice["trials"])


def test_sweep_seeds_per_scale_have_a_floor(tmp_path):
    assert MIN_SWEEP_SEEDS == {"smoke": 1, "quick": 2, "full": 3, "cluster": 3}
    text = BASE.replace("scales: {smoke: {seeds: 2}}", "scales: {smoke: {seeds: 2}, quick: {seeds: 2}, full: {seeds: 2}}")
    study = load_study(_write(tmp_path, text + "tune: {lr: [0.01, 0.1]}\n"), "full")
    assert study.tune.seeds == 3 and len(study.sweep) == 2 * 2 * 3
    assert load_study(_write(tmp_path, text + "tune: {lr: [0.01, 0.1]}\n"), "quick").tune.seeds == 2
    with pytest.raises(StudyError, match=r"tune\.seeds \(scale full\): 2 sweep seeds; the choice needs at least 3"):
        load_study(_write(tmp_path, text + "tune: {lr: [0.01, 0.1], seeds: 2}\n"), "full")


@pytest.mark.parametrize("tune", ["tune: {lr: [0.1, 0.01]}", "tune: {lr: [0.0, 0.01]}"])
def test_numeric_candidates_must_ascend_from_above_zero(tmp_path, tune):
    with pytest.raises(StudyError, match="positive and ascending"):
        load_study(_write(tmp_path, BASE + tune + "\n"), "smoke")


@pytest.mark.parametrize("name", ["depth_activation_init", "residual", "linear_step", "silu_relu"])
def test_the_tuned_studies_list_three_learning_rates_and_enough_sweep_seeds(name):
    for scale in ("quick", "full"):
        tune = load_study(STUDIES / f"{name}.yaml", scale, validate=False).tune
        assert len(dict(tune.choices)["lr"]) == 3 and tune.seeds >= MIN_SWEEP_SEEDS[scale]


def test_the_plan_counts_every_sweep_seed_and_the_expected_extension_runs(tmp_path):
    from gradatlas.workflow.costs import EXPECTED_EXTENSION_STEPS, estimated_seconds
    from gradatlas.workflow.studies import compose_run, expected_extension

    study = _study(tmp_path)   # 2 cells x 3 candidates x 2 sweep seeds
    assert len(study.sweep) == 2 * 3 * 2
    runs, seconds = expected_extension(study, stack_size=1)
    # One run alone costs what its config costs; per cell, 0.614 steps of one trial on 2 seeds.
    one = {act: estimated_seconds(compose_run({**dict(study.sweep[0].settings), "activation": act, "lr": 0.333}))
           for act in ("relu", "tanh")}
    assert runs == pytest.approx(EXPECTED_EXTENSION_STEPS * 2 * 2)
    assert seconds == pytest.approx(EXPECTED_EXTENSION_STEPS * 2 * sum(one.values()))
    assert EXPECTED_EXTENSION_STEPS == pytest.approx(0.614, abs=5e-4)
    untuned = load_study(_write(tmp_path, BASE), "smoke")
    assert expected_extension(untuned) == (0.0, 0.0)

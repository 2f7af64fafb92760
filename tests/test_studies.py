"""Study files, the cost model and the batch plan (no training)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gradatlas.workflow import costs
from gradatlas.workflow.studies import (
    PlannedRun,
    Study,
    StudyError,
    batch_cost,
    compose_run,
    load_study,
    plan_batches,
    plan_stacks,
)

STUDIES = sorted((Path(__file__).resolve().parents[1] / "conf" / "studies").glob("*.yaml"))


def _study(costs_: list[float]) -> Study:
    runs = tuple(PlannedRun("s", f"c-{i}", 0, (("c", i),), ()) for i in range(len(costs_)))
    return Study("s", Path("s.yaml"), "", (), ("c",), runs, tuple(costs_))


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
@pytest.mark.parametrize("scale", ["smoke", "quick", "full", "cluster"])
def test_every_study_plans_every_run_once(path, scale):
    study = load_study(path, scale)
    assert len(study.costs) == len(study.runs) and all(c > 0 for c in study.costs)
    plan = plan_batches(study, 60.0)
    assert sorted(i for batch in plan for i in batch) == list(range(len(study.runs)))
    assert plan == plan_batches(study, 60.0), "the plan must be the same on every call"


def test_plan_balances_and_puts_the_longest_batch_first():
    study = _study([30, 1, 1, 1, 20, 2, 2, 10, 10, 5, 5, 3])   # total 90
    plan = plan_batches(study, 30.0)
    loads = [batch_cost(study, b) for b in plan]
    assert len(plan) == 3                                        # ceil(90 / 30)
    assert loads == sorted(loads, reverse=True)
    # Longest-processing-time-first: within the largest single run of each other.
    assert max(loads) - min(loads) <= 30


def test_plan_never_makes_empty_batches():
    study = _study([100.0, 1.0])
    plan = plan_batches(study, 10.0)                            # ceil(101 / 10) = 11 > 2 runs
    assert len(plan) == 2 and all(plan)


def test_plan_refuses_bad_input():
    with pytest.raises(ValueError, match="batch_seconds"):
        plan_batches(_study([1.0]), 0)
    unvalidated = load_study(STUDIES[0], "smoke", validate=False)
    assert unvalidated.costs == ()
    with pytest.raises(ValueError, match="without validation"):
        plan_batches(unvalidated, 60)


def test_cost_grows_with_what_makes_a_run_long():
    base = {"model": "mlp", "depth": 10, "width": 64, "epochs": 10}
    cost = costs.estimated_seconds
    assert cost(compose_run({**base, "epochs": 20})) > 1.9 * cost(compose_run(base)) * 0.99
    assert cost(compose_run({**base, "depth": 30})) > cost(compose_run(base))
    assert cost(compose_run({**base, "width": 256})) > cost(compose_run(base))
    assert cost(compose_run({**base, "norm": "batch"})) > cost(compose_run(base))
    seq = {"data": "adding", "width": 64, "max_steps": 100}
    short = cost(compose_run({**seq, "model": "lstm", "length": 10}))
    long = cost(compose_run({**seq, "model": "lstm", "length": 50}))
    assert long > 3 * short
    assert cost(compose_run({**seq, "model": "rnn", "length": 50})) < long


# --------------------------------------------------------------------------- study files: keys, grid values, names

SELU = Path(__file__).resolve().parents[1] / "conf" / "studies" / "selu.yaml"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_duplicate_yaml_key_is_an_error_naming_file_and_key(tmp_path):
    path = _write(tmp_path, "dup.yaml", "fixed: {model: mlp}\ngrid: {activation: [relu, tanh]}\n"
                                         "grid: {activation: [selu]}\n")
    with pytest.raises(StudyError) as err:
        load_study(path, "smoke")
    assert str(path) in str(err.value) and "'grid'" in str(err.value) and "line 3" in str(err.value)
    nested = _write(tmp_path, "nested.yaml", "fixed: {model: mlp, width: 8, width: 16}\ngrid: {depth: [2]}\n")
    with pytest.raises(StudyError, match="duplicate key 'width'"):
        load_study(nested, "smoke")


@pytest.mark.parametrize("values", ["[1, 1.0]", "[0.5, 5.0e-1]", "[2, 2.0, 3]"])
def test_grid_values_equal_once_typed_are_an_error(tmp_path, values):
    path = _write(tmp_path, "gain.yaml", f"fixed: {{model: mlp}}\ngrid: {{gain: {values}}}\n")
    with pytest.raises(StudyError) as err:
        load_study(path, "smoke")
    assert str(path) in str(err.value) and "grid.gain" in str(err.value)


def test_a_bad_first_grid_value_is_labelled_grid_not_fixed(tmp_path):
    path = _write(tmp_path, "label.yaml", "fixed: {model: mlp, width: 8}\ngrid: {activation: [sigmoidd, relu]}\n")
    with pytest.raises(StudyError) as err:
        load_study(path, "smoke")
    message = str(err.value)
    assert "grid.activation='sigmoidd'" in message and "fixed" not in message.split(":")[1]
    # a grid value that needs another factor of the grid is still the grid's
    seq = _write(tmp_path, "seq.yaml", "fixed: {model: rnn}\ngrid: {data: [cifar]}\n")
    with pytest.raises(StudyError, match=r"grid\.data='cifar'"):
        load_study(seq, "smoke")
    # and an error of the fixed settings is labelled fixed
    fixed = _write(tmp_path, "fixed.yaml", "fixed: {model: mlp, width: 0}\ngrid: {activation: [relu]}\n")
    with pytest.raises(StudyError, match=r"fixed \(scale smoke\): model.width"):
        load_study(fixed, "smoke")


@pytest.mark.parametrize("name", ["x$(touch PWNED)", "my study", "a;b", "dots.in.name", "ü"])
def test_a_study_name_must_be_a_plain_identifier(tmp_path, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(SELU.read_text())
    with pytest.raises(StudyError) as err:
        load_study(path, "smoke", validate=False)
    assert str(path) in str(err.value) and "[A-Za-z0-9_]+" in str(err.value)


def test_cell_names_are_plain_tokens_and_values_that_are_not_are_hashed(tmp_path):
    path = _write(tmp_path, "paths.yaml", "fixed: {model: mlp}\n"
                                           "grid: {data.cache_dir: ['../../x', 'a b', '/abs', plain-1.5]}\n")
    cells = [run.cell for run in load_study(path, "smoke").runs]
    assert cells[3] == "data.cache_dir-plain-1.5"
    assert all(re.fullmatch(r"data\.cache_dir-h[0-9a-f]{12}", cell) for cell in cells[:3])
    assert len(set(cells)) == 4


# --------------------------------------------------------------------------- stacks


def _shaped_study(shapes: list[tuple], cost: float = 10.0) -> Study:
    """A study of runs with these (stack key, model[, size factor]) shapes (factor 1: width 64)."""
    runs = tuple(PlannedRun("s", f"c-{i}", 0, (("c", i),), ()) for i in range(len(shapes)))
    shapes = tuple((*shape, 1.0)[:3] for shape in shapes)
    return Study("s", Path("s.yaml"), "", (), ("c",), runs, (cost,) * len(shapes), shapes=shapes)


def test_stacks_hold_runs_of_one_shape_up_to_the_limit():
    shapes = [("a", "mlp"), ("b", "mlp"), ("a", "mlp"), ("a", "mlp"), ("b", "mlp"), ("a", "mlp"),
              ("r", "resmlp"), ("r", "resmlp"), ("l", "gru"), ("l", "gru")]
    stacks = plan_stacks(_shaped_study(shapes), stack_size=3)
    # resmlp: stacking measured no cheaper on a CPU (costs.STACK_SHARED <= 0); gru: cheaper.
    assert stacks == [(0, 2, 3), (5,), (1, 4), (6,), (7,), (8, 9)]
    assert plan_stacks(_shaped_study(shapes), stack_size=3, gpu=True)[-2:] == [(6, 7), (8, 9)]
    assert plan_stacks(_shaped_study(shapes), stack_size=1) == [(i,) for i in (0, 2, 3, 5, 1, 4, 6, 7, 8, 9)]
    # Width 128 (size factor 4): the gru's predicted gain is too small on a CPU, the mlp's
    # is not.
    wide = [(key, model, 4.0) for key, model in shapes]
    assert plan_stacks(_shaped_study(wide), stack_size=3)[-2:] == [(8,), (9,)]
    assert plan_stacks(_shaped_study(wide), stack_size=3)[0] == (0, 2, 3)


def test_jobs_hold_whole_stacks_and_regroup_into_them():
    shapes = [(key, "mlp") for key in "aabbbbbbcccddddddddd"]
    study = _shaped_study(shapes)
    stacks = set(plan_stacks(study, stack_size=4))
    plan = plan_batches(study, 25.0, stack_size=4)
    assert sorted(i for batch in plan for i in batch) == list(range(len(shapes)))
    for batch in plan:
        # A job's runs, grouped again as the training job groups them, are the plan's stacks.
        assert set(plan_stacks(study, 4, indices=batch)) <= stacks
    # A stack costs less than its runs alone (costs.STACK_SHARED > 0 for MLPs), more than one.
    assert 10.0 < batch_cost(study, (0, 1), stack_size=4) < 20.0
    assert sum(batch_cost(study, b, stack_size=4) for b in plan) < sum(study.costs)


def test_batch_groups_configs_as_the_plan_groups_runs():
    from gradatlas.workflow.batch import group_stacks

    study = load_study(STUDIES[0].parent / "depth_activation_init.yaml", "smoke")
    cfgs = [compose_run(run.overrides()) for run in study.sweep]
    assert [tuple(s) for s in group_stacks(cfgs, 4)] == plan_stacks(study, 4, sweep=True)


# --------------------------------------------------------------------------- cell_seeds

_CELL_SEEDS = ("fixed: {model: mlp, width: 8, max_steps: 2}\n"
               "grid: {activation: [relu, tanh], depth: [2, 3]}\n"
               "scales:\n  smoke:\n    seeds: 2\n    cell_seeds:\n{rules}")


def test_cell_seeds_give_only_the_matching_cells_their_count(tmp_path):
    path = _write(tmp_path, "more.yaml", _CELL_SEEDS.replace(
        "{rules}",
        "      - {cell: {activation: relu, depth: 3}, seeds: 5}\n      - {cell: {activation: tanh}, seeds: 3}\n"))
    study = load_study(path, "smoke")
    seeds: dict[str, list[int]] = {}
    for run in study.runs:
        seeds.setdefault(run.cell, []).append(run.seed)
    assert seeds == {"activation-relu/depth-2": [0, 1], "activation-relu/depth-3": [0, 1, 2, 3, 4],
                     "activation-tanh/depth-2": [0, 1, 2], "activation-tanh/depth-3": [0, 1, 2]}
    assert len(study.costs) == len(study.runs) == len(study.shapes) == 13


@pytest.mark.parametrize("rules, message", [
    ("      - {cell: {activation: gelu}, seeds: 5}\n", r"cell_seeds\[0\]\.cell\.activation='gelu': not one of"),
    ("      - {cell: {width: 8}, seeds: 5}\n", r"cell_seeds\[0\]\.cell\.width: not a factor"),
    ("      - {cell: {depth: 2}, seeds: 0}\n", r"cell_seeds\[0\]\.seeds: 0 is less than the minimum of 1"),
    ("      - {cell: {}, seeds: 4}\n", r"cell_seeds\[0\]\.cell: .* \(name at least one"),
    ("      - {cell: {depth: 2}, seed: 4}\n", r"cell_seeds\[0\]: Additional properties are not allowed \(.seed. was unexpected\)"),
    ("      - {cell: {depth: 2}, seeds: 4}\n      - {cell: {activation: relu}, seeds: 6}\n",
     r"activation-relu/depth-2 matches several cell_seeds rules"),
])
def test_bad_cell_seeds_are_an_error_naming_file_and_rule(tmp_path, rules, message):
    path = _write(tmp_path, "bad.yaml", _CELL_SEEDS.replace("{rules}", rules))
    with pytest.raises(StudyError, match=message) as err:
        load_study(path, "smoke")
    assert str(path) in str(err.value)


def test_grid_overview_shows_the_range_of_seeds_per_cell():
    import pandas as pd

    from gradatlas.analysis.commands import grid_overview

    runs = pd.DataFrame({"study": ["a"] * 5 + ["b"] * 2, "cell": ["x", "x", "y", "y", "y", "z", "w"],
                         "seed": [0, 1, 0, 1, 2, 0, 0], "status": "ok"})
    assert list(grid_overview(runs, ["a", "b", "c"])["seeds"]) == ["2--3", 1, 0]


def test_stack_shared_share_falls_with_the_size_of_the_matrices():
    assert costs.stack_shared("gru") == costs.STACK_SHARED["gru"]
    shares = [costs.stack_shared("mlp", f) for f in (1.0, 2.0, 4.0, 16.0)]
    assert shares == sorted(shares, reverse=True) and 0 < shares[-1] < shares[0]
    assert costs.stack_shared("mlp", 4.0) == pytest.approx(0.6 / (0.6 + 0.4 * 4))
    assert costs.stack_shared("resmlp", 4.0) == costs.STACK_SHARED["resmlp"] <= 0  # never stacked on a CPU
    # A stack of one costs a run; a stack of E less than E runs where the share is positive.
    assert costs.stack_seconds(10.0, 1, "gru") == pytest.approx(10.0)
    assert 10.0 < costs.stack_seconds(10.0, 4, "gru") < 40.0
    assert costs.stack_seconds(10.0, 4, "resmlp") == pytest.approx(40.0)


# --------------------------------------------------------------------------- shape (conf/studies.schema.yaml)


@pytest.mark.parametrize("text, message", [
    ("fixed: {model: mlp}\ngrid: {depth: [2]}\ngird: {depth: [3]}\n", r"the study: .*'gird' was unexpected"),
    ("grid: {depth: [2]}\nscales: {smoke: {seeds: 2.0}}\n", r"scales\.smoke\.seeds: 2\.0 is not of type 'integer'"),
    ("grid: {depth: [2]}\nscales: {smoke: {seeds: true}}\n", r"scales\.smoke\.seeds: True is not of type 'integer'"),
    ("grid: {depth: [2]}\nscales: {tiny: {seeds: 1}}\n", r"scales: .*'tiny' was unexpected"),
    ("grid: {depth: [2], seed: [0, 1]}\n", r"grid\.seed: .*\(set the number of seeds with scales"),
    ("grid: {'depth/x': [2]}\n", r"grid: 'depth/x' does not match .*\(a factor name or dotted config key"),
    ("grid: {depth: []}\n", r"grid\.depth: \[\] should be non-empty \(a non-empty list of distinct values\)"),
    ("grid: {depth: 2}\n", r"grid\.depth: 2 is not of type 'array'"),
    ("grid: {}\n", r"grid: \{\} should be non-empty \(a study needs at least one factor\)"),
    ("fixed: {depth: 2}\n", r"the study: 'grid' is a required property"),
    ("grid: {depth: [2]}\nclaims: [one]\n", r"claims\[0\]: 'one' is not of type 'integer'"),
    ("grid: {depth: [2]}\nscales: {full: {grid: {width: [8]}}}\n", r"scales\.full\.grid\.width: not a factor of the study's grid"),
    ("[1, 2]\n", r"the study: \[1, 2\] is not of type 'object'"),
])
def test_a_misshapen_study_is_an_error_naming_file_and_key(tmp_path, text, message):
    path = _write(tmp_path, "shape.yaml", text)
    with pytest.raises(StudyError, match=message) as err:
        load_study(path, "smoke", validate=False)
    assert str(err.value).startswith(f"{path}: ")


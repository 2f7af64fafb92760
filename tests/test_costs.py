"""The cost model's counts of optimizer steps and test evaluations, against trained runs."""

from __future__ import annotations

import pytest
from conftest import run_config

from gradatlas.run import records, runner
from gradatlas.workflow import costs

pytestmark = pytest.mark.unit

TINY = ("model=mlp", "model.depth=2", "model.width=8", "probe=off", "device=cpu", "data.n_test=32")
# name -> overrides of a tiny MLP run: epochs, batch sizes, max_steps below and above the epochs'
# steps, n_train not divisible by the batch, evaluation every second epoch.
CONFIGS = {
    "three-epochs": ("train.epochs=3", "train.batch_size=32", "data.n_train=128"),
    "ragged-batches": ("train.epochs=2", "train.batch_size=30", "data.n_train=100"),
    "capped-mid-epoch": ("train.epochs=5", "train.batch_size=16", "data.n_train=100", "train.max_steps=9"),
    "cap-above-the-epochs": ("train.epochs=2", "train.batch_size=48", "data.n_train=100", "train.max_steps=50"),
    "eval-every-second-epoch": ("train.epochs=3", "train.batch_size=32", "data.n_train=128", "train.eval_every=2"),
    # Training runs on n_train - n_val: 6 steps here (10 if the held-out split were counted).
    "validation-held-out": ("train.epochs=2", "train.batch_size=20", "data.n_train=100", "data.n_val=30"),
}


def _counted(cfg) -> tuple[float, float]:
    """(optimizer steps, in-loop test evaluations) inside ``costs.estimated_seconds``: the
    estimate is START + (steps + eval passes) x per-step seconds, and the eval passes are
    EVAL_FRACTION x (evaluations x n_test + n_train + n_test) / batch_size."""
    per_step = costs.PER_STEP + costs.PER_UNIT[cfg.model.name] * costs.units(cfg)
    passes = costs.eval_passes(cfg)
    steps = (costs.estimated_seconds(cfg) - costs.START) / per_step - passes
    examples = passes * cfg.train.batch_size / costs.EVAL_FRACTION
    return steps, (examples - cfg.data.n_train - cfg.data.n_test) / cfg.data.n_test


@pytest.mark.parametrize("overrides", CONFIGS.values(), ids=CONFIGS.keys())
def test_cost_counts_steps_as_training_does(tmp_path, overrides):
    cfg = run_config([*TINY, *overrides], tmp_path / "run")
    info = runner.run(cfg)
    steps = records.read_run_record(cfg.out).steps
    trained = len(steps)  # one row per optimizer step
    assert info["status"] == "ok" and info["steps_done"] == trained and steps["step"].tolist() == list(range(trained))
    evaluations = int(steps["test_loss"].notna().sum())  # the test split, at the end of an epoch
    counted_steps, counted_evaluations = _counted(cfg)
    assert counted_steps == pytest.approx(trained, abs=1e-9)
    if cfg.train.eval_every == 1:
        assert counted_evaluations == pytest.approx(evaluations, abs=1e-9)
    else:
        # Evaluations every k epochs are costed as epochs / k; training also evaluates at its end.
        assert abs(counted_evaluations - evaluations) < 1

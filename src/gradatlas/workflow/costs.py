"""Estimated cost of a run, in seconds on one CPU core, from its configuration alone.

The workflow needs it before anything has run: to pack a study's runs into training jobs of
about equal length (so that no core idles while one long job finishes), to start the
longest jobs first, and to ask a cluster for a runtime. Being off by tens of percent costs
little; being off by 10x costs a core, so the model is deliberately simple:

    seconds = START + (steps + eval passes) x (PER_STEP + PER_UNIT[model] x units)

``units`` counts the sequential pieces of one forward and backward pass (layers of an MLP,
time steps x layers of a recurrent net), scaled up by the matrix size once it exceeds the
size where per-operation overhead, not arithmetic, dominates on a CPU. The coefficients were
fitted (``bench/cost_model.py``) to the in-loop times of the quick scale on the reference
machine (2-core x86_64 VM, one torch thread per run), START measured apart
(``bench/run_overhead.py``); see ``bench/README.md``. A data set
enters only through the steps and the evaluated examples it implies: the same MLP on ``digits``
and on ``mnist1d`` is measured within 2-8 % of the same measured / estimated ratio
(``bench/data_cost.py``).
"""

from __future__ import annotations

import math

from gradatlas.core.names import RECURRENT_MODELS
from gradatlas.run.config import RunConfig, total_steps

# Fitted by bench/cost_model.py to the quick scale's runs on the reference machine
# (bench/README.md, "cost_model.py"), except START, which that fit (to in-loop times) cannot see:
# composing the config, data, model, probes at step 0 outside the loop and the record, measured
# by bench/run_overhead.py (bench/README.md, "run_overhead.py"); most of a one-step run's cost.
START = 0.022               # seconds per run outside the step loop
PER_STEP = 0.826e-3         # seconds per optimizer step, whatever the model (loss, optimizer, logging)
PER_UNIT = {                # seconds per unit per step, by architecture
    "mlp": 0.123e-3,
    "resmlp": 0.139e-3,
    "rnn": 0.235e-3,
    "gru": 0.692e-3,
    "lstm": 0.867e-3,
}
# Below this many multiply-adds per unit (a 64-wide layer on a batch of 128), a unit costs
# about the same whatever its size; above it, cost grows with the arithmetic.
OVERHEAD_BOUND_MACS = 64 * 64 * 128
EVAL_FRACTION = 1 / 3       # a forward pass on one example, relative to a training step's share
# The input gradients along the arc (probe.input_grad_corr, once at step 0), in training-step
# equivalents: 0.065 s more per run of a depth-32, width-256 MLP whose 1 step and evaluation
# (2.33 step equivalents) took 0.58 s (median of 16 paired runs with and without, 1 thread;
# bench/README.md, "input_grad_corr").
INPUT_GRAD_PASSES = 0.26


def size_factor(cfg: RunConfig) -> float:
    """How many times its arithmetic a unit of this size costs past the overhead bound (>= 1)."""
    return max(1.0, cfg.model.width * cfg.model.width * cfg.train.batch_size / OVERHEAD_BOUND_MACS)


def units(cfg: RunConfig) -> float:
    """Sequential pieces of one training step, scaled by their size past the overhead bound."""
    model = cfg.model
    # The input layer and head of an MLP, the stem and head of a residual MLP, count as one.
    pieces = cfg.data.length * model.depth if model.name in RECURRENT_MODELS else model.depth + 1
    if model.norm != "none":
        pieces *= 1.5
    return pieces * size_factor(cfg)


def trained_examples(cfg: RunConfig) -> int:
    """The examples a run trains on: ``data.n_train`` less the held-out validation split."""
    return cfg.data.n_train - cfg.data.n_val


def eval_passes(cfg: RunConfig) -> float:
    """Evaluation work in training-step equivalents: the test split every ``eval_every``
    epochs and every split at the end (training, validation and test), forward only."""
    n = total_steps(cfg, trained_examples(cfg))
    per_epoch = max(trained_examples(cfg) // cfg.train.batch_size, 1)
    evaluations = math.ceil(n / per_epoch) / cfg.train.eval_every
    examples = evaluations * cfg.data.n_test + cfg.data.n_train + cfg.data.n_test
    return EVAL_FRACTION * examples / cfg.train.batch_size


# The Jacobian spectrum at step 0 (probe.jacobian_inputs): seconds per input and D W factor of
# the product (float64 matmuls, and the SVDs at the probed depths), at width up to
# JACOBIAN_WIDTH, past it growing with the arithmetic (width^3). Measured as the difference
# of whole runs with and without the probe, tanh/orthogonal, 4 inputs: 0.076 s at width 128,
# depth 33 and 0.05 s at width 64, depth 17 (medians of 3, one thread, busy 2-core machine).
JACOBIAN_PER_FACTOR = 0.7e-3
JACOBIAN_WIDTH = 128


def jacobian_seconds(cfg: RunConfig) -> float:
    """Estimated seconds of the Jacobian spectrum probe (0 where it is off)."""
    inputs = cfg.probe.jacobian_inputs if cfg.probe.enabled else 0
    scale = max(1.0, (cfg.model.width / JACOBIAN_WIDTH) ** 3)
    return inputs * max(cfg.model.depth - 1, 0) * JACOBIAN_PER_FACTOR * scale


def estimated_seconds(cfg: RunConfig) -> float:
    """Estimated wall seconds of ``run(cfg)`` on one core of the reference CPU."""
    per_step = PER_STEP + PER_UNIT[cfg.model.name] * units(cfg)
    probes = INPUT_GRAD_PASSES if cfg.probe.input_grad_corr else 0.0
    return START + (total_steps(cfg, trained_examples(cfg)) + eval_passes(cfg) + probes) * per_step + jacobian_seconds(cfg)


# Extension steps a tuned cell is expected to take (gradatlas.workflow.tuning: an end of a
# numeric candidate list chosen outright): p (1 + q), by bench/extension_share.py on the
# archived full-scale sweeps re-scored on the 3-value lists the archive holds: p = 100/177,
# the share of cells whose best candidate is strictly at an end (depth_activation_init 97 of
# 168, linear_step 3 of 9); q = 2/23, the share of depth_activation_init's cells at the lower
# end whose next step (0.00333, archived as 0.003) wins again. bench/README.md, "Expected
# extension runs".
EXPECTED_EXTENSION_STEPS = 100 / 177 * (1 + 2 / 23)


# A stack of E runs (loop.train_stack) costs run x (SHARED + (1 - SHARED) x E): SHARED is the
# share of a run's cost that the stack pays once (Python dispatch, per-operation overhead),
# the rest (arithmetic, memory traffic, per-member probes) it pays per member; at width 64 on
# the reference machine, one thread per job. At or below 0 a stack is no cheaper than its runs
# one by one, and on a CPU such runs are not stacked. Where each value comes from:
# bench/README.md, "How the planner's stack shares were measured".
STACK_SHARED = {
    "mlp": 0.60,
    "resmlp": -0.25,
    "rnn": 0.23,
    "gru": 0.23,
    "lstm": -0.15,
}
# Larger matrices (``size_factor`` f > 1) add arithmetic, which a stack pays per member, and
# not per-operation overhead: the shared share becomes s / (s + (1 - s) f) (against the
# benchmark at width 128: bench/README.md, same section). Below MIN_STACK_SHARED a stack is
# not planned on a CPU: the gain is within what two jobs on two cores take away.
MIN_STACK_SHARED = 0.1


def stack_shared(model: str, factor: float = 1.0) -> float:
    """The share of a run's cost that a stack of ``model`` runs of size ``factor``
    (``size_factor``) pays once, on the reference CPU."""
    shared = STACK_SHARED[model]
    return shared if shared <= 0 else shared / (shared + (1.0 - shared) * factor)


def stack_seconds(run_seconds: float, size: int, model: str, factor: float = 1.0) -> float:
    """Estimated seconds of a stack of ``size`` runs of ``model`` (of size ``factor``) that
    cost ``run_seconds`` each alone (on the reference CPU)."""
    shared = max(stack_shared(model, factor), 0.0)
    return run_seconds * (shared + (1.0 - shared) * size)


def limit_stack_size(model: str, limit: int, gpu: bool = False, factor: float = 1.0) -> int:
    """The stack size to plan for ``model`` (of size ``factor``) under the device's ``limit``:
    on a CPU, 1 where stacking was measured or is predicted to save too little
    (``stack_shared`` < ``MIN_STACK_SHARED``). On a GPU the limit (stacking there is not
    measured yet: bench/README.md, "Not measured on a GPU")."""
    return limit if gpu or stack_shared(model, factor) >= MIN_STACK_SHARED else 1

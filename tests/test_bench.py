"""The benchmarks' configurations still resolve against the studies and configs they name
(a benchmark is not run by the suite, but one whose slices vanished with a grid change
would fail only when someone needs its numbers)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from gradatlas.run.config import stack_key
from gradatlas.run.data import make_dataset

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("quick", [False, True])
def test_every_stacking_slice_is_a_stack_of_its_size(quick):
    stacking = _module("stacking")
    slices = [(scale, name, spec) for scale, named in stacking.SLICES.items() for name, spec in named.items()]
    assert {scale for scale, _, _ in slices} == {"full", "cluster"}
    for scale, name, spec in slices:
        if quick and spec[5] is None:
            continue
        cfgs = stacking.slice_configs(scale, name, quick, "cpu")
        assert len(cfgs) == spec[3] and len({stack_key(c) for c in cfgs}) == 1, name
        assert cfgs[0].train.max_steps == (spec[5] if quick else spec[4])
        assert not any(c.probe.enabled for c in cfgs)  # sweep runs train unprobed


def test_every_probe_overhead_case_composes():
    probe_overhead = _module("probe_overhead")
    for name, (overrides, quick) in probe_overhead.CASES.items():
        for extra in ([], quick):
            cfg = probe_overhead.compose([*overrides, *extra])
            assert cfg.train.max_steps is None or cfg.train.max_steps > 0, name


def test_probe_overhead_times_a_stack_of_seeds(tmp_path):
    probe_overhead = _module("probe_overhead")
    overrides, quick = probe_overhead.CASES["mlp20_relu_he_mnist1d"]
    cfg = probe_overhead.compose([*overrides, *quick, "model.depth=2", "model.width=8", "train.max_steps=3",
                                  "data.n_train=256", "data.n_test=64", "device=cpu", f"out={tmp_path}/run"])
    data = make_dataset(cfg.data)
    seconds, cpu_seconds, first = probe_overhead.timed_train(cfg, data, torch.device("cpu"), stack=2)
    _, _, alone = probe_overhead.timed_train(cfg, data, torch.device("cpu"))
    assert seconds > 0 and cpu_seconds > 0 and len(first.step_rows) == 3
    # Member 0 of the stack is the run alone (seed cfg.seed), up to batched rounding.
    assert [r["loss"] for r in first.step_rows] == pytest.approx([r["loss"] for r in alone.step_rows], rel=1e-5)

"""Shared fixtures and builders for the gradatlas tests.

Every test session uses a private data cache (``GRADATLAS_CACHE``), so MNIST-1D is generated
once per session and never read from, or written to, the developer's own cache.

Two lanes (README, "Tests"): ``workflow`` tests run Snakemake, LaTeX or Slurm, or use a fixture
that does (``WORKFLOW_FIXTURES``); every other test is ``unit``. A test marks itself (or its
module) ``workflow``; collection fails for a test that uses a workflow fixture unmarked, and
``workflow_helpers.snakemake`` refuses to run inside a unit test, so ``-m unit`` never runs
the workflow by accident.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import pytest
import torch

from gradatlas.run.config import RunConfig, load_run_config
from gradatlas.run.data import Dataset

# The suite's models are tiny: one intra-op thread is fastest, and on a busy machine two
# OpenMP threads turn a 16x8 matmul from microseconds into milliseconds (threads waiting at
# barriers for a core that another process holds). Subprocesses get the same via the env.
torch.set_num_threads(1)
SUBPROCESS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# One MNIST-1D size for the whole suite, so the data set is generated once per session.
TINY_DATA = ("data.n_train=128", "data.n_test=64")
# A tiny feed-forward run: a few steps, small batches.
TINY_MLP = ("model=mlp", "model.depth=3", "model.width=8", "train.batch_size=32", "train.max_steps=3",
            "device=cpu", *TINY_DATA)


# Fixtures that run the workflow (or build on one that does).
WORKFLOW_FIXTURES = frozenset({"smoke", "archived", "rebuilt", "smoke_tables", "cluster"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put every test in one lane: ``workflow`` where marked, ``unit`` otherwise; refuse a test
    that uses a workflow fixture without the ``workflow`` mark."""
    unmarked = []
    for item in items:
        if item.get_closest_marker("workflow") is not None:
            continue
        if WORKFLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            unmarked.append(item.nodeid)
        item.add_marker(pytest.mark.unit)
    if unmarked:
        raise pytest.UsageError("tests that use a workflow fixture must be marked pytest.mark.workflow: "
                                + ", ".join(unmarked[:10]))


@pytest.fixture(autouse=True)
def _lane(request: pytest.FixtureRequest):
    """Tell ``workflow_helpers`` which lane the running test is in."""
    import workflow_helpers

    workflow_helpers.IN_UNIT_TEST = request.node.get_closest_marker("workflow") is None
    yield
    workflow_helpers.IN_UNIT_TEST = False


@pytest.fixture(scope="session", autouse=True)
def gradatlas_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide data cache, exported as ``GRADATLAS_CACHE`` (read by conf/data/*.yaml)."""
    path = tmp_path_factory.mktemp("gradatlas-cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("GRADATLAS_CACHE", str(path))
    yield path
    patch.undo()


def compose(overrides: Sequence[str] = ()):
    """Compose ``conf/train.yaml`` with Hydra's compose API (no validation)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from gradatlas.run.train import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=list(overrides))


def run_config(overrides: Sequence[str] = (), out: Optional[Path] = None) -> RunConfig:
    """Compose and validate a run config, with ``out`` set when given."""
    extra = [f"out={out}"] if out is not None else []
    return load_run_config(compose([*overrides, *extra]))


@pytest.fixture
def make_run_config(tmp_path: Path):
    """Builder: ``make_run_config(overrides, name)`` -> a validated ``RunConfig`` writing to tmp."""

    def build(overrides: Sequence[str] = (), name: str = "run") -> RunConfig:
        return run_config(overrides, tmp_path / "runs" / name)

    return build


def fake_dataset(
    n: int = 6,
    input_dim: int = 4,
    output_dim: int = 3,
    length: Optional[int] = None,
    task: str = "classification",
    readout_steps: int = 0,
    seed: int = 0,
) -> Dataset:
    """A small random data set: ``(n, input_dim)`` or, with ``length``, ``(n, length, input_dim)``."""
    gen = torch.Generator().manual_seed(seed)
    shape = (n, input_dim) if length is None else (n, length, input_dim)
    x = torch.randn(*shape, generator=gen)
    if task == "classification":
        y_shape = (n, readout_steps) if readout_steps else (n,)
        y = torch.randint(0, output_dim, y_shape, generator=gen)
    else:
        y = torch.randn(n, output_dim, generator=gen)
    return Dataset(
        x_train=x, y_train=y, x_test=x.clone(), y_test=y.clone(), task=task, input_dim=input_dim,
        output_dim=output_dim, sequence=length is not None, readout_steps=readout_steps,
        chance=1.0 / output_dim if task == "classification" else 1.0,
    )


@pytest.fixture(scope="session")
def smoke(tmp_path_factory) -> Path:
    """The whole workflow at the smoke scale, run once locally (paper included)."""
    from workflow_helpers import make_workdir, snakemake

    workdir = make_workdir(tmp_path_factory.mktemp("smoke"))
    snakemake(workdir, "--cores", "2", "--config", "scale=smoke")
    return workdir

"""The workflow's training plan per study, cached so that parsing the workflow stays fast.

Every Snakemake invocation (``-n``, ``--report``, each Slurm job) parses the workflow, and
planning a study validates and costs every one of its runs (``studies.load_study``), seconds
in all, plus the import of Hydra. The plan, each batch's run indices and estimated
seconds, is a pure function of the study file, the scale, ``batch_seconds``, the stack size
limit and device kind, and the code and configs that validate and cost the runs; it is stored under a key hashing all of them, so
any change to one of them plans afresh (and validates afresh: a bad study still fails at
parse time). A cache hit imports neither torch nor Hydra.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # the whole gradatlas package
CACHE_VERSION = 4


@dataclass(frozen=True)
class StudyPlan:
    """One study's training jobs at one scale: run indices and estimated seconds per batch,
    and for a tuned study (``tune:``) the same for the jobs of its sweep, and the expected
    extension runs and seconds of its ``tune`` job (``studies.expected_extension``)."""

    batches: tuple[tuple[int, ...], ...]
    seconds: tuple[float, ...]
    runs: int = 0
    sweep_batches: tuple[tuple[int, ...], ...] = ()
    sweep_seconds: tuple[float, ...] = ()
    sweep_runs: int = 0
    stacks: int = 0
    sweep_stacks: int = 0
    tune_runs: float = 0.0
    tune_seconds: float = 0.0

    @property
    def tuned(self) -> bool:
        """Whether the study chooses settings per cell on a validation split first."""
        return bool(self.sweep_batches)

    def jobs(self, sweep: bool) -> tuple[tuple[tuple[int, ...], ...], tuple[float, ...]]:
        """Run indices and estimated seconds of the sweep's jobs or of the study's own jobs."""
        return (self.sweep_batches, self.sweep_seconds) if sweep else (self.batches, self.seconds)

    def to_json(self) -> dict:
        """The plan as JSON-ready containers (``from_json`` reads it back)."""
        return {"batches": self.batches, "seconds": self.seconds, "runs": self.runs,
                "sweep_batches": self.sweep_batches, "sweep_seconds": self.sweep_seconds,
                "sweep_runs": self.sweep_runs, "stacks": self.stacks, "sweep_stacks": self.sweep_stacks,
                "tune_runs": self.tune_runs, "tune_seconds": self.tune_seconds}

    @classmethod
    def from_json(cls, stored: dict) -> "StudyPlan":
        """A plan written by ``to_json``."""
        return cls(tuple(map(tuple, stored["batches"])), tuple(stored["seconds"]), int(stored["runs"]),
                   tuple(map(tuple, stored["sweep_batches"])), tuple(stored["sweep_seconds"]),
                   int(stored["sweep_runs"]), int(stored["stacks"]), int(stored["sweep_stacks"]),
                   float(stored["tune_runs"]), float(stored["tune_seconds"]))


def default_cache_dir() -> Path:
    """``$GRADATLAS_CACHE/plans`` (the data cache's root), else ``.cache/gradatlas/plans``."""
    return Path(os.environ.get("GRADATLAS_CACHE", ".cache/gradatlas")) / "plans"


def _code_version(conf_dir: Path) -> str:
    """Hash of what validates and costs a run: the package's source and the run configs
    (every ``conf/`` YAML file outside ``studies/``, which are keyed one by one)."""
    digest = hashlib.sha256()
    sources = sorted(PACKAGE.rglob("*.py"))
    configs = sorted(p for p in conf_dir.rglob("*.yaml") if "studies" not in p.relative_to(conf_dir).parts)
    for path in [*sources, *configs]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def plan_key(study_file: Path, scale: str, batch_seconds: float, code_version: str,
             stack_size: int = 1, gpu: bool = False) -> str:
    """The cache key of one study's plan."""
    digest = hashlib.sha256()
    for part in (str(CACHE_VERSION), scale, repr(float(batch_seconds)), code_version, str(stack_size), str(gpu)):
        digest.update(part.encode() + b"\0")
    digest.update(study_file.read_bytes())
    return digest.hexdigest()[:32]


def _plan(study_file: Path, scale: str, batch_seconds: float, stack_size: int = 1, gpu: bool = False) -> StudyPlan:
    from gradatlas.workflow.studies import (batch_cost, expected_extension, load_study, plan_batches,  # imports Hydra
                                            plan_stacks)

    study = load_study(study_file, scale)
    stacking = {"stack_size": stack_size, "gpu": gpu}
    batches = plan_batches(study, batch_seconds, **stacking)
    sweep = plan_batches(study, batch_seconds, sweep=True, **stacking)
    return StudyPlan(tuple(batches), tuple(batch_cost(study, batch, **stacking) for batch in batches), len(study.runs),
                     tuple(sweep), tuple(batch_cost(study, batch, sweep=True, **stacking) for batch in sweep),
                     len(study.sweep), len(plan_stacks(study, stack_size, gpu=gpu)),
                     len(plan_stacks(study, stack_size, sweep=True, gpu=gpu)) if study.sweep else 0,
                     *expected_extension(study, stack_size, gpu))


def study_plans(study_files: list[Path], scale: str, batch_seconds: float, conf_dir: Path,
                cache_dir: Path | None = None, stack_size: int = 1, gpu: bool = False) -> dict[str, StudyPlan]:
    """Each study's plan (by study name), from the cache where its key is stored; runs are
    stacked up to ``stack_size`` (``studies.plan_stacks``; ``gpu``: the limit of a GPU).

    Raises:
        studies.StudyError: for an invalid study (never cached).
    """
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    version = _code_version(Path(conf_dir))
    plans = {}
    for study_file in map(Path, study_files):
        path = cache_dir / f"{study_file.stem}-{plan_key(study_file, scale, batch_seconds, version, stack_size, gpu)}.json"
        try:
            stored = json.loads(path.read_text())
            plans[study_file.stem] = StudyPlan.from_json(stored)
            continue
        except (OSError, ValueError, KeyError, TypeError):
            pass  # absent or unreadable: plan afresh
        plan = _plan(study_file, scale, batch_seconds, stack_size, gpu)
        from gradatlas.core.files import write_json_atomic  # pandas: only when writing

        write_json_atomic(path, {"study": str(study_file), "scale": scale, **plan.to_json()})
        plans[study_file.stem] = plan
    return plans

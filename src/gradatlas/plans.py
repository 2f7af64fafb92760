"""The workflow's training plan per study, cached so that parsing the workflow stays fast.

Every Snakemake invocation (``-n``, ``--report``, each Slurm job) parses the workflow, and
planning a study validates and costs every one of its runs (``studies.load_study``), seconds
in all, plus the import of torch. The plan, each batch's run indices and estimated
seconds, is a pure function of the study file, the scale, ``batch_seconds`` and the code and
configs that validate and cost the runs; it is stored under a key hashing all of them, so
any change to one of them plans afresh (and validates afresh: a bad study still fails at
parse time). A cache hit imports neither torch nor Hydra.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CACHE_VERSION = 1


@dataclass(frozen=True)
class StudyPlan:
    """One study's training jobs at one scale: run indices and estimated seconds per batch."""

    batches: tuple[tuple[int, ...], ...]
    seconds: tuple[float, ...]


def default_cache_dir() -> Path:
    """``$GRADATLAS_CACHE/plans`` (the data cache's root), else ``.cache/gradatlas/plans``."""
    return Path(os.environ.get("GRADATLAS_CACHE", ".cache/gradatlas")) / "plans"


def _code_version(conf_dir: Path) -> str:
    """Hash of what validates and costs a run: the package's source and the run configs
    (every ``conf/`` YAML file outside ``studies/``, which are keyed one by one)."""
    digest = hashlib.sha256()
    sources = sorted(PACKAGE.glob("*.py"))
    configs = sorted(p for p in conf_dir.rglob("*.yaml") if "studies" not in p.relative_to(conf_dir).parts)
    for path in [*sources, *configs]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def plan_key(study_file: Path, scale: str, batch_seconds: float, code_version: str) -> str:
    """The cache key of one study's plan."""
    digest = hashlib.sha256()
    for part in (str(CACHE_VERSION), scale, repr(float(batch_seconds)), code_version):
        digest.update(part.encode() + b"\0")
    digest.update(study_file.read_bytes())
    return digest.hexdigest()[:32]


def _plan(study_file: Path, scale: str, batch_seconds: float) -> StudyPlan:
    from gradatlas.studies import batch_cost, load_study, plan_batches  # imports torch and Hydra

    study = load_study(study_file, scale)
    batches = plan_batches(study, batch_seconds)
    return StudyPlan(tuple(batches), tuple(batch_cost(study, batch) for batch in batches))


def study_plans(study_files: list[Path], scale: str, batch_seconds: float, conf_dir: Path,
                cache_dir: Path | None = None) -> dict[str, StudyPlan]:
    """Each study's plan (by study name), from the cache where its key is stored.

    Raises:
        studies.StudyError: for an invalid study (never cached).
    """
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    version = _code_version(Path(conf_dir))
    plans = {}
    for study_file in map(Path, study_files):
        path = cache_dir / f"{study_file.stem}-{plan_key(study_file, scale, batch_seconds, version)}.json"
        try:
            stored = json.loads(path.read_text())
            plans[study_file.stem] = StudyPlan(tuple(map(tuple, stored["batches"])), tuple(stored["seconds"]))
            continue
        except (OSError, ValueError, KeyError, TypeError):
            pass  # absent or unreadable: plan afresh
        plan = _plan(study_file, scale, batch_seconds)
        from gradatlas import records  # pandas: only when writing

        records.write_json_atomic(path, {"study": str(study_file), "scale": scale, "batches": plan.batches,
                                         "seconds": plan.seconds})
        plans[study_file.stem] = plan
    return plans

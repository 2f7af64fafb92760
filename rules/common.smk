# Grid expansion and helpers. Studies are parsed and validated here, at parse time: a bad
# study file stops the workflow before any job runs, with the file and key named.

import math
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from gradatlas.studies import StudyError, batch_cost, load_study, plan_batches

validate(config, "../conf/workflow.schema.yaml")

SCALE = config["scale"]
RESULTS = config["results"]
STUDY_DIR = Path("conf/studies")


def _study_files():
    files = sorted(STUDY_DIR.glob("*.yaml"))
    wanted = config["studies"]
    if wanted:
        known = {f.stem for f in files}
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise WorkflowError(f"config studies: unknown {unknown}; known: {sorted(known)}")
        files = [f for f in files if f.stem in wanted]
    return files


try:
    STUDIES = {f.stem: load_study(f, SCALE) for f in _study_files()}
except StudyError as err:
    raise WorkflowError(f"invalid study: {err}") from None


# Each study's runs packed into jobs of about this many estimated seconds (gradatlas.costs):
# long enough that starting Python and torch is a small share, short enough to balance.
BATCH_SECONDS = config["batch_seconds"][SCALE]
PLANS = {name: plan_batches(study, BATCH_SECONDS) for name, study in STUDIES.items()}
# Tuned studies (``tune:``) first train a learning-rate sweep, planned the same way.
SWEEP_PLANS = {name: plan_batches(study, BATCH_SECONDS, sweep=True) for name, study in STUDIES.items() if study.tune}


def _is_sweep(wildcards):
    return wildcards.get("part", "batch") == "sweep"


def _batch(wildcards):
    plans = SWEEP_PLANS if _is_sweep(wildcards) else PLANS
    plan = plans.get(wildcards.study, [])
    index = int(wildcards.batch)
    if index >= len(plan):
        raise WorkflowError(f"study {wildcards.study} has {wildcards.get('part', 'batch')} jobs 0..{len(plan) - 1} at scale {SCALE}")
    return plan[index]


def batch_indices(wildcards):
    """The study's run indices that one training job trains (comma-separated)."""
    return ",".join(map(str, _batch(wildcards)))


def batch_estimate(wildcards):
    """Estimated seconds of one training job on one CPU core."""
    return batch_cost(STUDIES[wildcards.study], _batch(wildcards), sweep=_is_sweep(wildcards))


def batch_options(wildcards):
    """Options of ``gradatlas.batch`` beyond the plan: the sweep flag, or a tuned study's
    settings chosen per cell (each list item is one shell word)."""
    if _is_sweep(wildcards):
        return ["--sweep"]
    if STUDIES[wildcards.study].tune:
        return ["--tuning", tuning_file(wildcards)]
    return []


def tuning_inputs(wildcards):
    """A tuned study's settings chosen per cell, which its training jobs need; none otherwise."""
    return [tuning_file(wildcards)] if STUDIES[wildcards.study].tune and not _is_sweep(wildcards) else []


def tuning_file(wildcards):
    """Where a tuned study's settings chosen per cell are written."""
    return f"{RESULTS}/{SCALE}/tuning/{wildcards.study}.json"


def sweep_manifests(wildcards):
    """The manifests of a tuned study's sweep jobs."""
    return [f"{RESULTS}/{SCALE}/batches/{wildcards.study}/sweep-{index}.json" for index in range(len(SWEEP_PLANS[wildcards.study]))]


def train_priority(wildcards):
    """Sweep jobs first (their studies' training waits on them), then longest jobs first, so
    that the last to finish is a short one and no core idles long."""
    return round(batch_estimate(wildcards)) + (1_000_000 if _is_sweep(wildcards) else 0)


def train_runtime(wildcards):
    """Slurm runtime (minutes) of one training job: three times its estimate, plus start-up."""
    return 5 + math.ceil(3 * batch_estimate(wildcards) / 60)


def study_file(wildcards):
    """The study file a batch belongs to."""
    return str(STUDY_DIR / f"{wildcards.study}.yaml")


def batch_manifests(wildcards=None):
    """Every batch manifest of the selected scale: the outputs of all training jobs."""
    return [f"{RESULTS}/{SCALE}/batches/{name}/batch-{index}.json" for name, plan in PLANS.items() for index in range(len(plan))]


def summary(name):
    """Path of a summary table of the selected scale."""
    return f"{RESULTS}/{SCALE}/summary/{name}.parquet"


def scale_path(name):
    """A product of the selected scale: ``<results>/<scale>/<name>``."""
    return f"{RESULTS}/{SCALE}/{name}"


def scale_root(wildcards, input):
    """``<results>/<scale>``, read off the ``runs`` summary input (``<root>/summary/runs.parquet``)."""
    return str(Path(input.runs).parent.parent)


ALL_STUDIES = sorted(f.stem for f in STUDY_DIR.glob("*.yaml"))
# One caption per figure of gradatlas.figures.FIGURES (tests check the two agree); read from
# the captions so that parsing the workflow need not import matplotlib and seaborn.
FIGURE_NAMES = sorted(p.stem for p in Path("report/figures").glob("*.rst"))
PAPER_SOURCES = ["paper/main.tex", "paper/refs.bib", *sorted(str(p) for p in Path("paper/sections").glob("*.tex"))]


def final_targets():
    """What `snakemake` builds by default at the selected scale."""
    return [summary("runs"), summary("layers"), summary("timesteps"), scale_path("paper.pdf")]


def plan_total():
    """The plan's total line (gradatlas.plan) for the selected studies at this run's cores."""
    from gradatlas.plan import study_jobs, summarize, total_line

    # None on a cluster (--jobs without --cores): the estimate is then for one core.
    cores = workflow._cores or 1
    jobs = [job for study in STUDIES.values() for job in study_jobs(study, BATCH_SECONDS)]
    runs = sum(len(study.runs) + len(study.sweep) for study in STUDIES.values())
    return total_line(summarize(jobs, runs, cores), cores)


onstart:
    print(f"gradatlas plan (estimated, runs with a complete record are reused): {plan_total()}")

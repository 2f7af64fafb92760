# Grid expansion and helpers. Studies are parsed and validated here, at parse time: a bad
# study file stops the workflow before any job runs, with the file and key named.

import math
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from gradatlas import records
from gradatlas.studies import StudyError, batch_cost, load_study, plan_batches, study_name

validate(config, "../conf/workflow.schema.yaml")

SCALE = config["scale"]
RESULTS = config["results"]
STUDY_DIR = Path("conf/studies")


def _study_files():
    files = sorted(STUDY_DIR.glob("*.yaml"))
    for f in files:  # every name, selected or not: ALL_STUDIES reaches the ledger's command line
        study_name(f)
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


def _batch(wildcards):
    plan = PLANS[wildcards.study]
    index = int(wildcards.batch)
    if index >= len(plan):
        raise WorkflowError(f"study {wildcards.study} has batches 0..{len(plan) - 1} at scale {SCALE}")
    return plan[index]


def batch_indices(wildcards):
    """The study's run indices that one training job trains (comma-separated)."""
    return ",".join(map(str, _batch(wildcards)))


def batch_estimate(wildcards):
    """Estimated seconds of one training job on one CPU core."""
    return batch_cost(STUDIES[wildcards.study], _batch(wildcards))


def train_priority(wildcards):
    """Longest jobs first, so that the last to finish is a short one and no core idles long."""
    return round(batch_estimate(wildcards))


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


# A record damaged or deleted since its batch ran is retrained by a plain rerun: its batch's
# manifest is withdrawn here (and the summary with it), before Snakemake reads the outputs'
# state (gradatlas.records.withdraw_stale; completeness is gradatlas.records.is_complete).
for _withdrawn in records.withdraw_stale(batch_manifests(), [summary(n) for n in ("runs", "layers", "timesteps")]):
    print(f"gradatlas: {_withdrawn}", file=sys.stderr)


def final_targets():
    """What `snakemake` builds by default at the selected scale."""
    return [summary("runs"), summary("layers"), summary("timesteps"), scale_path("paper.pdf")]

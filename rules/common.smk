# Grid expansion and helpers. Studies are parsed and validated here, at parse time: a bad
# study file stops the workflow before any job runs, with the file and key named.

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from gradatlas.figures import FIGURES
from gradatlas.studies import StudyError, batch_count, load_study

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


def runs_per_batch(wildcards):
    """Runs per training job at the scale of the target."""
    return config["runs_per_batch"][wildcards.scale]


# Minutes one run may take on a cluster node, per scale: the training job's runtime is this
# times the runs in its batch, plus start-up.
MINUTES_PER_RUN = {"smoke": 1, "quick": 3, "full": 20}


def train_runtime(wildcards):
    """Slurm runtime (minutes) of one training job, from the number of runs in its batch."""
    study = STUDIES.get(wildcards.study)
    runs = len(study.runs) if study is not None else config["runs_per_batch"][wildcards.scale]
    per_batch = min(runs, config["runs_per_batch"][wildcards.scale])
    return 5 + per_batch * MINUTES_PER_RUN[wildcards.scale]


def study_file(wildcards):
    """The study file a batch belongs to."""
    return str(STUDY_DIR / f"{wildcards.study}.yaml")


def batch_manifests(wildcards=None):
    """Every batch manifest of the selected scale: the outputs of all training jobs."""
    rpb = config["runs_per_batch"][SCALE]
    return [
        f"{RESULTS}/{SCALE}/batches/{name}/batch-{index}.json"
        for name, study in STUDIES.items()
        for index in range(batch_count(study, rpb))
    ]


def summary(name):
    """Path of a summary table of the selected scale."""
    return f"{RESULTS}/{SCALE}/summary/{name}.parquet"


def scale_path(name):
    """A product of the selected scale: ``<results>/<scale>/<name>``."""
    return f"{RESULTS}/{SCALE}/{name}"


def scale_root(wildcards, output):
    """``<results>/<scale>``, read off the analysis rule's ``numbers`` output."""
    return str(Path(output.numbers).parent)


ALL_STUDIES = sorted(f.stem for f in STUDY_DIR.glob("*.yaml"))
PAPER_SOURCES = ["paper/main.tex", "paper/refs.bib", *sorted(str(p) for p in Path("paper/sections").glob("*.tex"))]


def final_targets():
    """What `snakemake` builds by default at the selected scale."""
    return [summary("runs"), summary("layers"), summary("timesteps"), scale_path("paper.pdf")]

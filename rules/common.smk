# Grid expansion and helpers. Studies are parsed and validated here, at parse time: a bad
# study file stops the workflow before any job runs, with the file and key named. The plans
# are cached (gradatlas.workflow.plan_cache), so that a parse whose studies and code did not change is fast.

import math
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from gradatlas.analysis.figures.registry import FIGURE_NAMES as REGISTERED_FIGURES
from gradatlas.core import layout
from gradatlas.core.layout import MANIFEST, archive_dir
from gradatlas.workflow import verified
from gradatlas.workflow.plan import stack_limit, uses_gpu
from gradatlas.workflow.plan_cache import study_plans

validate(config, "../conf/workflow.schema.yaml")

SCALE = config["scale"]
# `--config gpus=N`: `gpu` becomes a resource of N (unless --resources sets it), each training
# job needs one and claims its own (gradatlas.workflow.gpus), so N jobs train at once, one per GPU.
GPUS = config["gpus"]
if GPUS and "gpu" not in workflow.global_resources:
    workflow.register_resource("gpu", GPUS)
RESULTS = config["results"]
# Every path of the scale comes from gradatlas.core.layout, the one definition of the results layout.
PATHS = layout.ScalePaths(RESULTS, SCALE)
STUDY_DIR = Path("conf/studies")
# A scale archived in the repository (results/<scale>/archive, gradatlas.workflow.archive) is rebuilt
# from its archived summary: nothing trains, unless `--config retrain=true`.
ARCHIVE = archive_dir(SCALE)
RETRAIN = str(config["retrain"]).lower() == "true"
FROM_ARCHIVE = not RETRAIN and (ARCHIVE / MANIFEST).is_file()


def _study_files():
    files = sorted(STUDY_DIR.glob("*.yaml"))
    for f in files:  # every name, selected or not: ALL_STUDIES reaches the ledger's command line
        try:
            layout.study_name(f)
        except ValueError as err:
            raise WorkflowError(f"invalid study: {err}") from None
    wanted = config["studies"]
    if wanted:
        known = {f.stem for f in files}
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise WorkflowError(f"config studies: unknown {unknown}; known: {sorted(known)}")
        files = [f for f in files if f.stem in wanted]
    return files


# Each study's runs packed into jobs of about this many estimated seconds (gradatlas.workflow.costs):
# long enough that starting Python and torch is a small share, short enough to balance.
# Planning validates every run; gradatlas.workflow.plan_cache caches the plans keyed on what they depend on.
BATCH_SECONDS = config["batch_seconds"][SCALE]
# Runs of one shape train as one network (a stack, gradatlas.run.loop.train_stack), at most
# stack_size[cpu|cuda] of them: the GPU limit when the jobs train on GPUs.
STACK_GPU = uses_gpu(config)
STACK_SIZE = stack_limit(config, STACK_GPU)
try:
    PLANS = {} if FROM_ARCHIVE else study_plans(
        _study_files(), SCALE, BATCH_SECONDS, conf_dir=Path("conf"), stack_size=STACK_SIZE, gpu=STACK_GPU)
except Exception as err:
    # gradatlas.workflow.studies imports Hydra: only when a study is planned afresh, not on a cache hit.
    from gradatlas.workflow.studies import StudyError

    if isinstance(err, StudyError):
        raise WorkflowError(f"invalid study: {err}") from None
    raise
if FROM_ARCHIVE:
    _study_files()  # still validated: the ledger's tables name every study


def _is_sweep(wildcards):
    return wildcards.get("part", "batch") == "sweep"


def _job(wildcards):
    """Run indices and estimated seconds of one training job (`batch` or `sweep` part)."""
    batches, seconds = PLANS[wildcards.study].jobs(sweep=_is_sweep(wildcards))
    index = int(wildcards.batch)
    if index >= len(batches):
        raise WorkflowError(f"study {wildcards.study} has {wildcards.get('part', 'batch')} jobs "
                            f"0..{len(batches) - 1} at scale {SCALE}")
    return batches[index], seconds[index]


def batch_indices(wildcards):
    """The study's run indices that one training job trains (comma-separated)."""
    return ",".join(map(str, _job(wildcards)[0]))


def batch_estimate(wildcards):
    """Estimated seconds of one training job on one CPU core."""
    return _job(wildcards)[1]


def batch_options(wildcards):
    """Options of ``gradatlas.workflow.batch`` beyond the plan: the stack size, the sweep flag, or a
    tuned study's settings chosen per cell (each list item is one shell word)."""
    stacking = ["--stack-size", str(STACK_SIZE)] + (["--stack-gpu"] if STACK_GPU else [])
    if _is_sweep(wildcards):
        return [*stacking, "--sweep"]
    if PLANS[wildcards.study].tuned:
        return [*stacking, "--tuning", tuning_file(wildcards)]
    return stacking


def tune_options(wildcards):
    """Options of ``gradatlas.workflow.extend`` beyond the plan: the stack size of the
    extension runs it trains (each list item is one shell word)."""
    return ["--stack-size", str(STACK_SIZE)] + (["--stack-gpu"] if STACK_GPU else [])


def tune_runtime(wildcards, attempt):
    """Slurm runtime (minutes) of a `tune` job: as ``train_runtime``, from the plan's expected
    seconds of extension runs (gradatlas.workflow.plan_cache.StudyPlan.tune_seconds)."""
    return (5 + math.ceil(3 * PLANS[wildcards.study].tune_seconds / 60)) * 2 ** (attempt - 1)


def extension_manifest(study):
    """The manifest of the extension runs a tuned study's `tune` job trained."""
    return str(PATHS.batch_manifest(study, "extend", 0))


def tuning_inputs(wildcards):
    """A tuned study's settings chosen per cell, which its training jobs need; none otherwise."""
    return [tuning_file(wildcards)] if PLANS[wildcards.study].tuned and not _is_sweep(wildcards) else []


def tuning_file(wildcards):
    """Where a tuned study's settings chosen per cell are written."""
    return str(PATHS.tuning(wildcards.study))


def sweep_manifests(wildcards):
    """The manifests of a tuned study's sweep jobs."""
    return _manifests("sweep", [wildcards.study])


def train_priority(wildcards):
    """Sweep jobs first (their studies' training waits on them), then longest jobs first, so
    that the last to finish is a short one and no core idles long."""
    return round(batch_estimate(wildcards)) + (1_000_000 if _is_sweep(wildcards) else 0)


def train_runtime(wildcards, attempt):
    """Slurm runtime (minutes) of one training job: three times its estimate plus start-up,
    doubled with each retry, so that a job resubmitted after running out of time can finish."""
    return (5 + math.ceil(3 * batch_estimate(wildcards) / 60)) * 2 ** (attempt - 1)


def train_gpus(wildcards):
    """GPUs a local training job needs: one where the workflow shares GPUs (config gpus)."""
    return 1 if GPUS else 0


def study_file(wildcards):
    """The study file a batch belongs to."""
    return str(STUDY_DIR / f"{wildcards.study}.yaml")


def _manifests(part, studies):
    return [str(PATHS.batch_manifest(name, part, index))
            for name in studies for index in range(len(PLANS[name].jobs(sweep=part == "sweep")[0]))]


def batch_manifests(wildcards=None):
    """Every batch manifest of the selected scale: the outputs of all training jobs but sweeps."""
    return _manifests("batch", PLANS)


SUMMARIES = layout.SUMMARY_TABLES


def summaries():
    """Every summary table of the selected scale."""
    return [summary(name) for name in SUMMARIES]


def summary(name):
    """Path of a summary table of the selected scale."""
    return str(PATHS.summary(name))


def scale_path(name):
    """A product of the selected scale: ``<results>/<scale>/<name>``."""
    return str(PATHS.root / name) if name else str(PATHS.root)


def scale_root(wildcards, input):
    """``<results>/<scale>``, read off the ``runs`` summary input (``<root>/summary/runs.parquet``)."""
    return str(Path(input.runs).parent.parent)


ALL_STUDIES = sorted(f.stem for f in STUDY_DIR.glob("*.yaml"))
# The figures of the registry (gradatlas.analysis.figures.registry), which imports neither matplotlib,
# seaborn nor torch: parsing stays light. Their report captions, report/figures/<name>.rst, are written
# from the same specs (`python -m gradatlas.analysis.figures captions`; a test checks they are current).
FIGURE_NAMES = sorted(REGISTERED_FIGURES)
PAPER_SOURCES = ["paper/main.tex", "paper/refs.bib", *sorted(str(p) for p in Path("paper/sections").glob("*.tex"))]


# A record damaged or deleted since its batch ran is retrained by a plain rerun. Parsing changes
# no file of the results: it finds the batches whose manifest lists a record no longer complete
# (gradatlas.workflow.verified.stale_batches; completeness is gradatlas.run.records.check_record),
# and each such batch's training job is then forced (force_stale_batch), as `--forcerun
# <manifest>` would: a dry run or --report lists it, and only a real run replaces the manifest
# and, downstream, the summary. A missing manifest is forced too: Snakemake does not remake a
# missing intermediate file while what was made from it is up to date. Jobs that Snakemake
# runs on other machines parse this file too; they check nothing.
STALE_BATCHES = {}
FORCED_BATCHES = set()
if not FROM_ARCHIVE and workflow.is_main_process:
    _ALL_MANIFESTS = batch_manifests() + _manifests("sweep", PLANS) + [
        extension_manifest(name) for name, plan in PLANS.items() if plan.tuned]
    # A dry run leaves even the cache of batches found complete as it was.
    STALE_BATCHES = verified.stale_batches(_ALL_MANIFESTS, remember=not workflow.output_settings.dryrun)
    FORCED_BATCHES = set(STALE_BATCHES) | {m for m in _ALL_MANIFESTS if not Path(m).exists()}
    for _manifest, _problems in STALE_BATCHES.items():
        print(f"gradatlas: {_manifest}: its batch trains again ({len(_problems)} problem(s), e.g. {_problems[0]})",
              file=sys.stderr)


def force_stale_batch(wildcards):
    """No input: marks the training job of a stale or missing batch manifest
    (``FORCED_BATCHES``) for forced execution, as ``--forcerun <manifest>`` does. The parse
    cannot set that option: Snakemake 9 hands the workflow its DAG settings only after it
    has parsed the Snakefile (``snakemake.api.DAGApi``) and copies ``forcerun`` into the
    DAG's ``forcefiles`` when it creates the DAG. Input functions run while the DAG is
    built, before Snakemake decides what must run (``DAG.update_needrun``). The job's
    dependents (aggregation, then the paper) rerun as after any forced job."""
    return _force(str(PATHS.batch_manifest(wildcards.study, wildcards.part, wildcards.batch)))


def force_stale_tuning(wildcards):
    """``force_stale_batch`` for a `tune` job: forced when its extension manifest is stale or
    missing (it lists sweep runs the job trained)."""
    return _force(extension_manifest(wildcards.study))


def _force(manifest):
    if manifest in FORCED_BATCHES:
        forced = getattr(workflow.dag, "forcefiles", None)
        if not isinstance(forced, set):
            raise WorkflowError("gradatlas: this Snakemake's DAG has no set `forcefiles`: a stale batch cannot be "
                                f"forced to train again; rerun with --forcerun {manifest}")
        forced.add(manifest)
    return []


def final_targets():
    """What `snakemake` builds by default at the selected scale: from an archive, also the
    check that the rebuilt tables equal the archived ones."""
    return [*summaries(), scale_path("paper.pdf"), *([scale_path("regenerated.json")] if FROM_ARCHIVE else [])]


def plan_total():
    """The plan's total line (gradatlas.workflow.plan) for the selected studies at this run's cores."""
    from gradatlas.workflow.plan import summarize, total_line

    # None on a cluster (--jobs without --cores): the estimate is then for one core.
    cores = workflow._cores or 1
    return total_line(summarize(PLANS, cores), cores)


def plan_line(wildcards):
    """``plan_total`` as a rule parameter (the archive stores it as the estimate)."""
    return plan_total()


def verification_report():
    """The archive's last verification (gradatlas.workflow.verify), which the paper reports; none
    when training afresh, whose runs no verification has seen."""
    found = ARCHIVE / "verify.json"  # not `report`: a Snakemake keyword
    return [str(found)] if FROM_ARCHIVE and found.is_file() else []


def verification_option(wildcards, input):
    """``--report FILE`` for ``gradatlas.workflow.verify tex`` where there is a report (one shell word each)."""
    return ["--report", input.report[0]] if input.report else []


onstart:
    if FROM_ARCHIVE:
        print(f"gradatlas: scale {SCALE} is rebuilt from {ARCHIVE} (nothing trains; `--config retrain=true` retrains)")
    else:
        print(f"gradatlas plan (estimated, runs with a complete record are reused): {plan_total()}")

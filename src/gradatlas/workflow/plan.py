"""What a scale costs before it runs: ``python -m gradatlas.workflow.plan --scale full --cores 2``.

Per study: the runs (and sweep runs of tuned studies, every candidate on every sweep seed),
the expected extension runs of a tuned study's ``tune`` job (``studies.expected_extension``:
``costs.EXPECTED_EXTENSION_STEPS`` steps per cell), the stacks the planned runs train in
(runs of one shape trained as one network, ``loop.train_stack``; at most ``stack_size`` of
``conf/workflow.yaml`` for the device), the jobs the workflow makes of them, the estimated
core-hours (``gradatlas.workflow.costs`` per run plus the start of each job's process), and
the wall time at N cores. The wall time replays the workflow's schedule: jobs start longest
first (a ``tune`` job first, then sweep jobs, as their studies wait on them) on the first
free core, a tuned study's ``tune`` job once its sweep has finished and its other jobs once
that has, and the analysis and paper follow the last job. The last line reads
``total: <runs> runs, <core-hours> core-h, <minutes> min at <N> cores (<stacks> stacks)``.
"""

from __future__ import annotations

import argparse
import heapq
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from gradatlas.core.exit_status import EXIT_BAD_INPUT, EXIT_OK
from gradatlas.workflow.plan_cache import StudyPlan, study_plans

# Starting a training job's Python and importing torch: about 2.5 s on the reference
# machine (bench/README.md, pipeline efficiency); counted once per job.
JOB_START_SECONDS = 2.5
# gradatlas.workflow.costs is fitted to runs and stacks measured one process at a time; in the
# workflow, with a job on every core, the jobs of the full scale ran this much longer than
# estimated (all training jobs' measured / estimated seconds on the reference machine, 2 jobs
# on 2 cores; bench/README.md, full scale: 1.80). Those estimates counted a tuned study's
# held-out validation examples as trained on; without them the same studies' full-scale
# estimate is 4511 s, not 4859 s, so the same measured seconds are 1.80 x 1.077 = 1.94 times
# it. The plan's core-hours and wall time include it; the packing of runs into jobs does not
# need it (a common factor). costs.START, added after this calibration, adds at most
# 2911 x 0.022 = 64 s (1.4 %) to those studies' estimate (bench/README.md, run_overhead.py):
# within the factor's accuracy, not taken out of it.
MEASURED_OVER_ESTIMATED = 1.94
# After training: aggregate, then ledger and figures side by side, then the paper. Measured
# at the full scale on the reference machine at about 100 s in all (bench/README.md); the
# quick scale's takes about 50 s.
ANALYSIS_SECONDS = 100.0


@dataclass(frozen=True)
class Job:
    """One job of the plan: its study, whether it is a sweep job (or the ``tune`` job that
    follows a study's sweep and precedes its other jobs), its seconds."""

    study: str
    sweep: bool
    seconds: float
    tune: bool = False

    @property
    def stage(self) -> int:
        """0 sweep, 1 tune, 2 the study's own runs: a job waits for its study's lower stages."""
        return 0 if self.sweep else 1 if self.tune else 2


def study_jobs(name: str, plan: StudyPlan) -> list[Job]:
    """The jobs the workflow makes of a study, with their estimated seconds."""
    jobs = [Job(name, sweep, JOB_START_SECONDS + MEASURED_OVER_ESTIMATED * seconds)
            for sweep in (True, False) for seconds in plan.jobs(sweep=sweep)[1]]
    if plan.tuned:
        jobs.append(Job(name, False, JOB_START_SECONDS + MEASURED_OVER_ESTIMATED * plan.tune_seconds, tune=True))
    return jobs


def simulate_wall(jobs: list[Job], cores: int) -> float:
    """Seconds until the last job ends when ``cores`` run them as the workflow orders them."""
    if not jobs:
        return 0.0
    left = {(job.study, stage): 0 for job in jobs for stage in range(3)}
    for job in jobs:
        left[job.study, job.stage] += 1
    waiting = sorted(jobs, key=lambda j: (not j.tune, not j.sweep, -j.seconds))
    free = [0.0] * cores            # when each core is next free
    running: list[tuple[float, int, Job]] = []   # (end, tiebreak, job)
    now, end, counter = 0.0, 0.0, 0
    while waiting:
        ready = [j for j in waiting if all(left[j.study, stage] == 0 for stage in range(j.stage))]
        if ready and min(free) <= now:
            job = ready[0]
            waiting.remove(job)
            core = free.index(min(free))
            free[core] = now + job.seconds
            heapq.heappush(running, (free[core], counter, job))
            counter += 1
            end = max(end, free[core])
            continue
        # Nothing can start now: advance to the next job's end.
        finish, _, done = heapq.heappop(running)
        now = max(now, finish)
        left[done.study, done.stage] -= 1
    return end


def uses_gpu(config: dict) -> bool:
    """Whether the workflow's training jobs run on GPUs (``device: cuda``, or ``gpus`` > 0)."""
    return config.get("device") == "cuda" or int(config.get("gpus", 0)) > 0


def stack_limit(config: dict, gpu: bool) -> int:
    """The workflow config's ``stack_size`` for the device (1 where it sets none)."""
    return int(config.get("stack_size", {}).get("cuda" if gpu else "cpu", 1))


def summarize(plans: dict[str, StudyPlan], cores: int) -> dict:
    """Runs, jobs, core-hours and wall minutes (training, then analysis) of the studies' plans."""
    jobs = [job for name, plan in plans.items() for job in study_jobs(name, plan)]
    return {"runs": sum(plan.runs + plan.sweep_runs + round(plan.tune_runs) for plan in plans.values()),
            "stacks": sum(plan.stacks + plan.sweep_stacks for plan in plans.values()), "jobs": len(jobs),
            "core_h": sum(j.seconds for j in jobs) / 3600,
            "wall_min": (simulate_wall(jobs, cores) + ANALYSIS_SECONDS) / 60}


def total_line(total: dict, cores: int) -> str:
    """The plan's summary line (also printed by the workflow when it starts)."""
    return (f"total: {total['runs']} runs, {total['core_h']:.2f} core-h, "
            f"{total['wall_min']:.0f} min at {cores} cores ({total['stacks']} stacks)")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from gradatlas.workflow.studies import SCALES, StudyError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", required=True, choices=SCALES)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--studies", nargs="*", default=None, help="study names (default: every conf/studies/*.yaml)")
    parser.add_argument("--workflow-config", default="conf/workflow.yaml",
                        help="for batch_seconds per scale and stack_size per device")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None,
                        help="the device whose stack_size limit applies (default: as the workflow config says)")
    args = parser.parse_args(argv)
    if args.cores < 1:
        parser.error("--cores must be at least 1")
    try:
        config = yaml.safe_load(Path(args.workflow_config).read_text())
    except (OSError, yaml.YAMLError) as err:
        print(f"gradatlas.workflow.plan: error: {args.workflow_config}: cannot read ({err})", file=sys.stderr)
        return EXIT_BAD_INPUT
    study_dir = Path(args.workflow_config).parent / "studies"
    files = sorted(study_dir.glob("*.yaml"))
    if args.studies:
        unknown = sorted(set(args.studies) - {f.stem for f in files})
        if unknown:
            parser.error(f"unknown studies {unknown}")
        files = [f for f in files if f.stem in args.studies]
    try:
        gpu = uses_gpu(config) if args.device is None else args.device == "cuda"
        plans = study_plans(files, args.scale, float(config["batch_seconds"][args.scale]), study_dir.parent,
                            stack_size=stack_limit(config, gpu), gpu=gpu)
    except StudyError as err:
        print(f"gradatlas.workflow.plan: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{'study':<24}{'runs':>7}{'sweep':>7}{'ext':>6}{'stacks':>8}{'jobs':>6}{'core-h':>9}{'min alone':>11}")
    for name, plan in plans.items():
        alone = summarize({name: plan}, args.cores)
        print(f"{name:<24}{plan.runs:>7}{plan.sweep_runs:>7}{round(plan.tune_runs):>6}{alone['stacks']:>8}{alone['jobs']:>6}"
              f"{alone['core_h']:>9.2f}{alone['wall_min']:>11.1f}")
    print(total_line(summarize(plans, args.cores), args.cores))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

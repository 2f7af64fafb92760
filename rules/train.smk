# One job trains one batch of a study's runs in one process (gradatlas.workflow.batch): each run
# still gets its own atomic record, and runs whose record is complete are reused. The
# batches (which runs, how long) are planned in common.smk from gradatlas.workflow.costs. A batch whose
# manifest lists a damaged record runs again (common.smk: force_stale_batch). Every
# value reaching the shell is quoted (:q), so results roots with spaces work.
#
# A tuned study (``tune:`` in its study file) trains in two parts: `sweep` jobs train every
# cell at each candidate (learning rate, say) on sweep seeds, `tune` picks each cell's
# candidate on the validation split, and only then do its `batch` jobs run with it. Where a
# cell's best learning rate is at an end of its list, the `tune` job itself trains that cell's
# sweep runs one step beyond it (gradatlas.workflow.extend says why not a checkpoint). The
# choice does not change which of the study's own runs exist, so the DAG is known at parse
# time and a dry run lists every job that runs.


rule train:
    input:
        study=study_file,
        tuning=tuning_inputs,
        stale=force_stale_batch,
    output:
        str(PATHS.batch_manifest("{study}", "{part}", "{batch}")),
    log:
        str(PATHS.train_log("{study}", "{part}", "{batch}")),
    wildcard_constraints:
        study="[A-Za-z0-9_]+",
        part="batch|sweep",
        batch="[0-9]+",
    params:
        runs=batch_indices,
        scale=SCALE,
        device=config["device"],
        gpus=GPUS,
        options=batch_options,
    conda:
        "../environment.yml"
    threads: 1
    priority: train_priority
    resources:
        mem_mb=4000,
        runtime=train_runtime,
        gpu=train_gpus,
    shell:
        "python -m gradatlas.workflow.batch {input.study:q} --scale {params.scale:q} --runs {params.runs:q}"
        " --device {params.device:q} --gpus {params.gpus:q} --threads {threads} {params.options:q}"
        " --manifest {output:q} > {log:q} 2>&1"


rule tune:
    input:
        study=study_file,
        sweep=sweep_manifests,
        stale=force_stale_tuning,
    output:
        tuning=str(PATHS.tuning("{study}")),
        manifest=str(PATHS.batch_manifest("{study}", "extend", 0)),
    log:
        str(PATHS.log("tuning/{study}")),
    wildcard_constraints:
        study="[A-Za-z0-9_]+",
    params:
        scale=SCALE,
        device=config["device"],
        options=tune_options,
    # Seconds of work that unblock a tuned study's batches: before any training job waiting
    # (their priorities are their estimated seconds), not after all of them.
    priority: 2_000_000
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=tune_runtime,
        gpu=train_gpus,
    shell:
        "python -m gradatlas.workflow.extend {input.study:q} --scale {params.scale:q} --manifests {input.sweep:q}"
        " --device {params.device:q} {params.options:q} --out {output.tuning:q} --manifest {output.manifest:q}"
        " > {log:q} 2>&1"

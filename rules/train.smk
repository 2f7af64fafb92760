# One job trains one batch of a study's runs in one process (gradatlas.batch): each run
# still gets its own atomic record, and runs whose record is complete are reused. The
# batches (which runs, how long) are planned in common.smk from gradatlas.costs. A batch whose
# manifest lists a damaged record runs again (common.smk: withdraw_stale_manifests). Every value reaching
# the shell is quoted (:q), so results roots with spaces work.


rule train:
    input:
        study_file,
    output:
        f"{RESULTS}/{SCALE}/batches/{{study}}/batch-{{batch}}.json",
    log:
        f"{RESULTS}/{SCALE}/logs/train/{{study}}/batch-{{batch}}.log",
    wildcard_constraints:
        study="[A-Za-z0-9_]+",
        batch="[0-9]+",
    params:
        runs=batch_indices,
        scale=SCALE,
        device=config["device"],
        gpus=GPUS,
    conda:
        "../environment.yml"
    threads: 1
    priority: train_priority
    resources:
        mem_mb=4000,
        runtime=train_runtime,
        gpu=train_gpus,
    shell:
        "python -m gradatlas.batch {input:q} --scale {params.scale:q} --runs {params.runs:q}"
        " --device {params.device:q} --gpus {params.gpus:q} --threads {threads} --manifest {output:q} > {log:q} 2>&1"

# One job trains one batch of a study's runs in one process (gradatlas.batch): each run
# still gets its own atomic record, and runs whose record is complete are reused.


rule train:
    input:
        study_file,
    output:
        f"{RESULTS}/{{scale}}/batches/{{study}}/batch-{{batch}}.json",
    log:
        f"{RESULTS}/{{scale}}/logs/train/{{study}}/batch-{{batch}}.log",
    wildcard_constraints:
        scale="smoke|quick|full",
        study="[A-Za-z0-9_]+",
        batch="[0-9]+",
    params:
        runs_per_batch=runs_per_batch,
        device=config["device"],
    conda:
        "../environment.yml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=train_runtime,
    shell:
        "python -m gradatlas.batch {input} --scale {wildcards.scale} --batch {wildcards.batch}"
        " --runs-per-batch {params.runs_per_batch}"
        " --device {params.device} --threads {threads} --manifest {output} > {log} 2>&1"

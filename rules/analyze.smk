# Aggregation of the run records into tidy summary tables (local: it reads every record).

localrules:
    aggregate,


rule aggregate:
    input:
        manifests=batch_manifests,
    output:
        runs=summary("runs"),
        layers=summary("layers"),
        timesteps=summary("timesteps"),
        steps=summary("steps"),
    log:
        scale_path("logs/aggregate.log"),
    conda:
        "../environment.yml"
    shell:
        "python -m gradatlas.workflow.aggregate --manifests {input.manifests:q} --runs {output.runs:q}"
        " --layers {output.layers:q} --timesteps {output.timesteps:q} --steps {output.steps:q} > {log:q} 2>&1"

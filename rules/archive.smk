# The archive of a scale (gradatlas.workflow.archive): results/<scale>/archive in the repository.
#
# From an archive (FROM_ARCHIVE, common.smk): the summary tables are restored from it, hashes
# checked, and the ledger, figures and paper are rebuilt from them by the usual rules; nothing
# trains. `regenerated` then checks that the rebuilt tables equal the archived ones, and
# `verify` retrains a seeded sample of the archived runs and compares (gradatlas.workflow.verify).
# After training (retrain=true or no archive yet): `archive` packs the scale's products.

if FROM_ARCHIVE:

    localrules:
        restore_summary,
        regenerated,

    rule restore_summary:
        input:
            manifest=str(ARCHIVE / MANIFEST),
        output:
            summary("{name}"),
        wildcard_constraints:
            name="|".join(SUMMARIES),
        params:
            archive=str(ARCHIVE),
            file="summary/{name}.parquet",
        conda:
            "../environment.yml"
        shell:
            "python -m gradatlas.workflow.archive restore --archive {params.archive:q} --file {params.file:q} --out {output:q}"

    rule regenerated:
        input:
            rules.ledger.output,
            rules.sensitivity.output,
            rules.figures.output,
        output:
            scale_path("regenerated.json"),
        log:
            scale_path("logs/regenerated.log"),
        params:
            archive=str(ARCHIVE),
            root=scale_path(""),
        conda:
            "../environment.yml"
        shell:
            "python -m gradatlas.workflow.archive compare --archive {params.archive:q} --root {params.root:q}"
            " --out {output:q} > {log:q} 2>&1"

    # An analysis change, no retraining: the derived products rebuilt from the archive's summary
    # replace the archived ones (`snakemake --cores 2 --config scale=full repack`).
    localrules:
        repack,

    rule repack:
        input:
            rules.ledger.output,
            rules.sensitivity.output,
            rules.figures.output,
            scale_path("paper.pdf"),
        output:
            scale_path("repacked.json"),
        log:
            scale_path("logs/repack.log"),
        params:
            archive=str(ARCHIVE),
            root=scale_path(""),
        conda:
            "../environment.yml"
        shell:
            "python -m gradatlas.workflow.archive repack --root {params.root:q} --archive {params.archive:q}"
            " --receipt {output:q} > {log:q} 2>&1"

    rule verify:
        input:
            manifest=str(ARCHIVE / MANIFEST),
        output:
            scale_path(f"verify/report-{config['verify']}-seed{config['verify_seed']}.json"),
        log:
            scale_path("logs/verify.log"),
        params:
            archive=str(ARCHIVE),
            scale=SCALE,
            sample=config["verify"],
            seed=config["verify_seed"],
            work=scale_path("verify"),
        threads: 1
        conda:
            "../environment.yml"
        shell:
            "python -m gradatlas.workflow.verify run --archive {params.archive:q} --scale {params.scale:q}"
            " --sample {params.sample:q} --seed {params.seed:q} --work {params.work:q} --report {output:q}"
            " --into-archive > {log:q} 2>&1"

else:

    localrules:
        archive,

    rule archive:
        input:
            summaries(),
            rules.ledger.output,
            rules.sensitivity.output,
            rules.figures.output,
            scale_path("paper.pdf"),
        output:
            # A receipt (a copy of the new manifest), not the archive itself: Snakemake removes
            # a job's outputs before it runs, and the archive must stay whole until replaced.
            scale_path("archived.json"),
        log:
            scale_path("logs/archive.log"),
        params:
            archive=str(ARCHIVE),
            root=scale_path(""),
            plan=plan_line,
        conda:
            "../environment.yml"
        shell:
            "python -m gradatlas.workflow.archive pack --root {params.root:q} --archive {params.archive:q}"
            " --plan {params.plan:q} --receipt {output:q} > {log:q} 2>&1"

# Analysis products and the paper: claims, theory, figures, tables, numbers.tex, then
# latexmk. All local: they read every summary and write small files.

localrules:
    ledger,
    sensitivity,
    figures,
    verification,
    paper,


# The ledger and the sensitivity read the same summary and run side by side where there are
# cores for both; the figures follow them (they draw the claims, the theory table and the
# sensitivity), over their threads.
rule ledger:
    input:
        runs=summary("runs"),
        layers=summary("layers"),
        timesteps=summary("timesteps"),
        steps=summary("steps"),
    output:
        claims=scale_path("analysis/claims.parquet"),
        theory=scale_path("analysis/theory.parquet"),
        numbers=scale_path("numbers.tex"),
        claims_table=report(scale_path("tables/claims.tex"), caption="../report/claims.rst", category="Claims"),
        claim_replicas=scale_path("tables/claim-replicas.tex"),
        claim_parts=scale_path("tables/claim-parts.tex"),
        tables=expand(scale_path("tables/study-{study}.tex"), study=ALL_STUDIES),
        grid=scale_path("tables/grid.tex"),
    log:
        scale_path("logs/ledger.log"),
    params:
        root=scale_root,
        studies=ALL_STUDIES,
    threads: 2
    conda:
        "../environment.yml"
    shell:
        "python -m gradatlas.analysis ledger --processes {threads} --root {params.root:q}"
        " --studies {params.studies:q} > {log:q} 2>&1"


# How far each named threshold can move before its verdict changes: beside the ledger (it
# re-evaluates every claim over each threshold's range), before the figures that draw it. Its
# claims spread over the rule's threads (full scale, two cores: 72 s against 151 s on one).
rule sensitivity:
    input:
        runs=summary("runs"),
        layers=summary("layers"),
        timesteps=summary("timesteps"),
        steps=summary("steps"),
    output:
        frame=scale_path("analysis/sensitivity.parquet"),
        table=scale_path("tables/sensitivity.tex"),
    log:
        scale_path("logs/sensitivity.log"),
    params:
        root=scale_root,
    threads: 2
    conda:
        "../environment.yml"
    shell:
        "python -m gradatlas.analysis sensitivity --processes {threads} --root {params.root:q} > {log:q} 2>&1"


rule figures:
    input:
        runs=summary("runs"),
        layers=summary("layers"),
        timesteps=summary("timesteps"),
        steps=summary("steps"),
        sensitivity=scale_path("analysis/sensitivity.parquet"),
        claims=scale_path("analysis/claims.parquet"),
        theory=scale_path("analysis/theory.parquet"),
    output:
        # One per registered figure (FIGURE_NAMES, rules/common.smk), captioned from its spec.
        figures=[
            report(scale_path(f"figures/{name}.pdf"), caption=f"../report/figures/{name}.rst", category="Figures")
            for name in FIGURE_NAMES
        ],
        png=[scale_path(f"figures/{name}.png") for name in FIGURE_NAMES],
    log:
        scale_path("logs/figures.log"),
    params:
        root=scale_root,
    threads: 2
    conda:
        "../environment.yml"
    shell:
        "python -m gradatlas.analysis figures --processes {threads} --root {params.root:q} > {log:q} 2>&1"


# The reproducibility appendix quotes the archive's last verification (gradatlas.workflow.verify).
rule verification:
    input:
        report=verification_report(),
    output:
        scale_path("verification.tex"),
    params:
        report=verification_option,
    conda:
        "../environment.yml"
    shell:
        "python -m gradatlas.workflow.verify tex {params.report:q} --out {output:q}"


rule paper:
    input:
        PAPER_SOURCES,
        rules.ledger.output,
        rules.sensitivity.output,
        rules.figures.output,
        rules.verification.output,
    output:
        report(scale_path("paper.pdf"), caption="../report/paper.rst", category="Paper"),
    log:
        scale_path("logs/paper.log"),
    params:
        # The scale root itself, not recursively ("//"): under it, runs/ holds thousands of
        # directories that kpathsea would scan on every lookup (48 s a pass at the full scale).
        texinputs=scale_path("") + ":paper//:",
        build=scale_path("latex"),
    conda:
        "../environment.yml"
    shell:
        "TEXINPUTS={params.texinputs:q} BIBINPUTS=paper: latexmk -pdf -interaction=nonstopmode -halt-on-error"
        " -outdir={params.build:q} paper/main.tex > {log:q} 2>&1 && cp {params.build:q}/main.pdf {output:q}"


# Analysis products and the paper: claims, theory, figures, tables, numbers.tex, then
# latexmk. All local: they read every summary and write small files.

from gradatlas.figures import FIGURES

ALL_STUDIES = sorted(f.stem for f in STUDY_DIR.glob("*.yaml"))
PAPER_SOURCES = ["paper/main.tex", "paper/refs.bib", *sorted(str(p) for p in Path("paper/sections").glob("*.tex"))]


localrules:
    analysis,
    paper,


def scale_path(name):
    """A product of the selected scale: ``<results>/<scale>/<name>``."""
    return f"{RESULTS}/{SCALE}/{name}"


rule analysis:
    input:
        runs=summary("runs"),
        layers=summary("layers"),
        timesteps=summary("timesteps"),
    output:
        claims=scale_path("analysis/claims.parquet"),
        theory=scale_path("analysis/theory.parquet"),
        numbers=scale_path("numbers.tex"),
        claims_table=report(scale_path("tables/claims.tex"), caption="../report/claims.rst", category="Claims"),
        tables=expand(scale_path("tables/study-{study}.tex"), study=ALL_STUDIES),
        grid=scale_path("tables/grid.tex"),
        figures=[
            report(scale_path(f"figures/{name}.pdf"), caption=f"../report/figures/{name}.rst", category="Figures")
            for name in FIGURES
        ],
    log:
        scale_path("logs/analysis.log"),
    params:
        results=RESULTS,
        scale=SCALE,
        studies=ALL_STUDIES,
    conda:
        "../environment.yml"
    shell:
        "python -m gradatlas.analysis --results {params.results} --scale {params.scale}"
        " --studies {params.studies} > {log} 2>&1"


rule paper:
    input:
        PAPER_SOURCES,
        rules.analysis.output,
    output:
        report(scale_path("paper.pdf"), caption="../report/paper.rst", category="Paper"),
    log:
        scale_path("logs/paper.log"),
    params:
        texinputs=scale_path("") + "//:paper//:",
        build=scale_path("latex"),
    conda:
        "../environment.yml"
    shell:
        "TEXINPUTS={params.texinputs} BIBINPUTS=paper: latexmk -pdf -interaction=nonstopmode -halt-on-error"
        " -outdir={params.build} paper/main.tex > {log} 2>&1 && cp {params.build}/main.pdf {output}"


def final_targets():
    """What `snakemake` builds by default at the selected scale."""
    return [summary("runs"), summary("layers"), summary("timesteps"), scale_path("paper.pdf")]

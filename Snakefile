# gradatlas: config -> runs -> run records -> summary -> claims/figures/tables -> paper.
# `snakemake --cores N` runs the quick scale; `--config scale=smoke|full` selects another.

from snakemake.utils import min_version

min_version("9.0")


configfile: "conf/workflow.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/train.smk"
include: "rules/analyze.smk"
include: "rules/paper.smk"


rule all:
    input:
        final_targets(),
    default_target: True

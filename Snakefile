# gradatlas: config -> runs -> run records -> summary -> claims/figures/tables -> paper.
# `snakemake --cores N` runs the quick scale; `--config scale=smoke|full` selects another.

import os
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


configfile: "conf/workflow.yaml"


# Jobs run `python -m gradatlas...`: find the interpreter that runs Snakemake (e.g. .venv/bin/python)
# first, also where its environment is not activated (Debian has no `python` at all) and in
# Slurm jobs, whose Snakemake is started with this same interpreter.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


report: "report/workflow.rst"


include: "rules/common.smk"


# A scale archived in the repository is rebuilt from its archived summary (rules/archive.smk);
# otherwise its runs train and are aggregated.
if not FROM_ARCHIVE:

    include: "rules/train.smk"
    include: "rules/analyze.smk"


include: "rules/paper.smk"
include: "rules/archive.smk"


rule all:
    input:
        final_targets(),
    default_target: True

# Analysis products and the paper. Filled in by the analysis issue; until then the
# workflow's final targets are the summary tables.


def final_targets():
    """What `snakemake` builds by default at the selected scale."""
    return [summary("runs"), summary("layers"), summary("timesteps")]

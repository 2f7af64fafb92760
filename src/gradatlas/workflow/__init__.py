"""Grids, jobs, summaries and archives: what the Snakemake workflow calls."""

"""The exit statuses of every command-line tool of the package (README, "Exit status").

A caller (Snakemake, a shell script, a person) tells from the status alone whether to fix
the input or to look at the work: bad input (arguments, a config, a study, an input file
that cannot be read) is refused before anything is written.
"""

EXIT_OK = 0
# The work itself failed: a run failed, a comparison differs, a product could not be written.
EXIT_FAILED = 1
# The input is bad; argparse exits 2 for bad arguments as well.
EXIT_BAD_INPUT = 2

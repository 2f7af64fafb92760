"""``python -m gradatlas.analysis {ledger,figures} ...`` (gradatlas.analysis.commands)."""

import sys

from gradatlas.analysis.commands import main

sys.exit(main())

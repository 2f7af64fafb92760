"""The claims of the paper, each with stated parts, a verdict rule, intervals and a stability.

Every claim reads the summary tables (``runs``, ``layers``, ``timesteps``; see
``gradatlas.workflow.aggregate``) and returns its *parts*: one measured quantity each, with its value,
a 95% interval, the number of observations and a part verdict. *Decisive* parts vote,
*informational* parts are reported only. The claim's verdict, its deciding part and its
stability are the rules of ``decision``; a claim none of whose studies is in the tables has
``no data at this scale`` (a missing cell is never guessed or substituted).

Stability. A verdict is only as good as its seeds. A draw is another draw of as many seeds,
independently per part, of the part's own replicates: the per-seed values of its cell (the
per-seed differences of a pair of cells, so that the pairing holds; the per-seed means of
pooled cells) drawn from the posterior predictive of a normal model (on the log scale for a
positive quantity; ``intervals.normal_replicates``), which carries the uncertainty of the mean
and of the spread; the runs of each group for shares (beta-binomial,
``intervals.binomial_replicates``); the runs themselves, resampled with replacement, for a
distribution-free median and for exact statements (``parts``). Each part's interval and rule
are re-run on all draws at once (``gradatlas.analysis.intervals`` is vectorised over draws).

Statistics (``gradatlas.analysis.intervals``). Per-seed values get a Student-t interval for
n >= ``parts.MIN_SEEDS``, the seeds' range (min, max) for fewer but at least two, and none for
one seed; a part over fewer than ``MIN_SEEDS`` seeds is shown but never gives ``supported`` or
``contradicted``. Positive quantities (norms, factors, ratios, deviations) are summarised on
the log scale (geometric mean, interval back-transformed, never negative); their exact zeros
are counted and stated, not logged. Shares of runs use Wilson intervals, differences of shares
Newcombe's, unpaired differences Welch's, medians over runs the distribution-free
order-statistic interval. Exact statements need no interval.

Conventions. "Per-layer factor" is ``theory.measured_factor`` at step 0: exp(-slope) of a fit of
log backprop_norm over the hidden layers, comparable to sqrt(chi_1); layers flagged by the
``underflow`` probe (float32 gradient 0 or subnormal) are left out of every fit, and the
count is stated. Skill, diverged and failed runs: ``measures``. Failed runs (crashes) are left
out.

Sub-claims and the family. The parts are the claim's sub-claims; the summary verdict is
supported / contradicted (every decisive sub-claim), mixed (some of each) or inconclusive
(``decision``). Every decisive sub-claim of the ledger is a one-sided test, Holm-adjusted over
all of them (``multiplicity``); thresholds are named (``thresholds``), their sensitivity
computed from the data (``sensitivity``), the seeds a scale needs fixed from the pilot
(``seeds``).

Layout: ``verdicts`` (verdicts and rules), ``thresholds``, ``parts`` (a part and its constructors),
``multiplicity`` (p-values, Holm), ``decision`` (combine, stability, deciding part), ``claim`` (``Claim``, ``ClaimResult``),
``summary`` (the ``Tables`` view), ``measures`` (shared measures), ``catalog`` (one module
per claim), ``registry`` (``CLAIMS``, found from ``catalog``), ``replicas`` (a claim decided
again on another data set's copies of its studies), ``ledger`` (every claim and its replicas
evaluated, as frames). This module re-exports what other code uses.
"""

from __future__ import annotations

from gradatlas.analysis.claims.verdicts import (CONTRADICTED, INCONCLUSIVE, MIXED, NO_DATA, SUPPORTED, UNSTABLE, VERDICTS,
                                                Judge, above, below, between, reported, verdict_above,
                                                verdict_below, verdict_within, within)
from gradatlas.analysis.claims.parts import (MIN_SEEDS, Part, exact_zero_part, fixed, median_part, missing,
                                             seed_part, share_difference_part, share_part, welch_part)
from gradatlas.analysis.claims.decision import (STABILITY_DRAWS, STABILITY_SEED, STABLE, combine, combine_array,
                                                deciding_part, reported_verdict, stability)
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.claim import CI_NOTE, Claim, ClaimResult
from gradatlas.analysis.claims.measures import (CAP_DECADES, FAIL_SKILL, TRAIN_SKILL, by_seed, deepest,
                                                diverged_note, failed_to_train, log10_ratio, outcome, paired,
                                                seed_mean, skill)
from gradatlas.analysis.claims.registry import CLAIMS
from gradatlas.analysis.claims.replicas import REPLICA_DATA, evaluate_replicas, replica_study, replica_tables
from gradatlas.analysis.claims.ledger import (PART_COLUMNS, REPLICA_COLUMNS, RESULT_COLUMNS, evaluate, evaluate_all,
                                              parts_frame, verdict_frame)

__all__ = [
    "CAP_DECADES", "CI_NOTE", "CLAIMS", "CONTRADICTED", "Claim", "ClaimResult", "FAIL_SKILL", "INCONCLUSIVE",
    "Judge", "MIN_SEEDS", "MIXED", "NO_DATA", "PART_COLUMNS", "REPLICA_COLUMNS", "REPLICA_DATA", "Part",
    "RESULT_COLUMNS", "STABILITY_DRAWS",
    "STABILITY_SEED", "STABLE", "SUPPORTED", "TRAIN_SKILL", "Tables", "UNSTABLE", "VERDICTS", "above", "below",
    "between", "by_seed", "combine", "combine_array", "deciding_part", "deepest", "diverged_note", "evaluate",
    "evaluate_all", "evaluate_replicas", "replica_study", "replica_tables",
    "exact_zero_part", "failed_to_train", "fixed", "log10_ratio", "median_part", "missing", "outcome", "paired",
    "parts_frame", "reported", "reported_verdict", "seed_mean", "seed_part", "share_difference_part",
    "share_part", "skill", "stability", "verdict_above", "verdict_below", "verdict_frame", "verdict_within",
    "welch_part", "within",
]

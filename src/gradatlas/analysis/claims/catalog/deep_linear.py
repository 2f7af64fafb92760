"""Claim 11: a deep linear network is a linear model: its accuracy equals a one-layer model's."""

from __future__ import annotations

import pandas as pd

from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import by_seed, deepest, diverged_note, mlp_runs, outcome, paired
from gradatlas.analysis.claims.parts import Part, missing, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import reported, within

STUDY = "linear_step"
# Equivalence margin of test accuracy, deepest linear - one layer.
LINEAR_TOLERANCE = Threshold("LINEAR_TOLERANCE", 0.03, "equivalence margin of test accuracy, deep linear - one layer", 0.005, 0.2, log=True)
SHALLOW_DEPTH = 1
THRESHOLDS = (LINEAR_TOLERANCE,)


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Deepest linear - depth-1 linear test accuracy (equivalence); relu - linear reported."""
    linear = mlp_runs(t, STUDY, activation="linear")
    one, deep = linear[linear["depth"] == SHALLOW_DEPTH], deepest(linear)
    if one.empty or deep.empty or deep["depth"].iloc[0] == SHALLOW_DEPTH:
        return [missing(f"test accuracy deep linear - depth-{SHALLOW_DEPTH} linear",
                        f"needs linear nets of depth {SHALLOW_DEPTH} and deeper")]
    depth = int(deep["depth"].iloc[0])
    relu = mlp_runs(t, STUDY, activation="relu", depth=depth)
    return [
        seed_part(f"test accuracy linear depth {depth} - depth {SHALLOW_DEPTH}",
                  paired(by_seed(deep, outcome(deep)), by_seed(one, outcome(one))), within(th.LINEAR_TOLERANCE),
                  note=diverged_note(pd.concat([deep, one]))),
        seed_part(f"test accuracy relu - linear at depth {depth}",
                  paired(by_seed(relu, outcome(relu)), by_seed(deep, outcome(deep))), reported, decisive=False,
                  absent="no relu runs"),
    ]


CLAIM = Claim(
    11, "Deep linear = linear",
    "A network with linear activations is a linear model, whatever its depth: its accuracy equals "
    "that of a one-layer model.",
    (STUDY,),
    f"test accuracy of the deepest linear net minus the depth-{SHALLOW_DEPTH} linear net (paired by seed)",
    rule_text(f"Equivalence: supported if the CI lies inside (-{LINEAR_TOLERANCE}, {LINEAR_TOLERANCE}); "
              f"contradicted if it lies entirely outside; inconclusive otherwise."),
    compute, THRESHOLDS, replicas=("digits",))

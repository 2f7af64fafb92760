"""Claim 2: tanh vanishes too, more slowly than sigmoid."""

from __future__ import annotations

from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import layer_factors, mlp_runs, ratio
from gradatlas.analysis.claims.parts import Part, join_notes, missing, seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, below, reported

STUDY = "depth_activation_init"
# tanh's factor over sigmoid's is above RATIO_BOUND (slower); tanh's own factor below FACTOR_BOUND (vanishes).
RATIO_BOUND = Threshold("RATIO_BOUND", 1.0, "factor ratio tanh / sigmoid above which tanh vanishes more slowly", 0.5, 2.0, log=True)
FACTOR_BOUND = Threshold("FACTOR_BOUND", 1.0, "per-layer factor between shrinking and growing", 0.5, 2.0, log=True)
THRESHOLDS = (RATIO_BOUND, FACTOR_BOUND,)


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """tanh / sigmoid factor ratio at the deepest common depth, paired by seed, and tanh's factor."""
    base = mlp_runs(t, STUDY, init="default", norm="none")
    tanh, sigm = base[base["activation"] == "tanh"], base[base["activation"] == "sigmoid"]
    depths = set(tanh["depth"]) & set(sigm["depth"])
    if not depths:
        return [missing("per-layer factor tanh / sigmoid", "needs tanh and sigmoid with default init at a common depth")]
    depth = max(depths)
    tanh, sigm = tanh[tanh["depth"] == depth], sigm[sigm["depth"] == depth]
    f_tanh, n_tanh = layer_factors(t, tanh)
    f_sigm, n_sigm = layer_factors(t, sigm)
    return [
        seed_part(f"per-layer factor tanh / sigmoid (depth {int(depth)}, paired by seed)", ratio(f_tanh, f_sigm),
                  above(th.RATIO_BOUND), log=True, note=join_notes(n_tanh, n_sigm)),
        seed_part("per-layer factor tanh", f_tanh, below(th.FACTOR_BOUND), log=True, note=n_tanh),
        seed_part("per-layer factor sigmoid", f_sigm, reported, log=True, decisive=False, note=n_sigm),
    ]


CLAIM = Claim(
    2, "tanh vanishes more slowly than sigmoid",
    "tanh also vanishes with depth, more slowly than sigmoid (zero-centred, tanh'(0) = 1).",
    (STUDY,),
    "per-layer factor tanh / sigmoid (default init, deepest common depth, paired by seed); tanh's factor",
    rule_text(f"Supported if the interval of the factor ratio tanh / sigmoid lies above {RATIO_BOUND:g} and the "
              f"interval of tanh's factor lies below {FACTOR_BOUND:g}; contradicted if the ratio's interval lies "
              f"below {RATIO_BOUND:g} or tanh's factor interval lies above {FACTOR_BOUND:g}."),
    compute, THRESHOLDS)

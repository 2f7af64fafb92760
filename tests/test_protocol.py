"""The verdict protocol on synthetic tables: sub-claims and the mixed verdict, Holm's adjustment
against a worked example and against scipy's t test, the threshold guard and the sensitivity
analysis on a table whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gradatlas.analysis import intervals
from gradatlas.analysis.claims import multiplicity, sensitivity
from gradatlas.analysis.claims.claim import Claim
from gradatlas.analysis.claims.parts import seed_part
from gradatlas.analysis.claims.summary import Tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import (CONTRADICTED, INCONCLUSIVE, MIXED, NO_DATA, SUPPORTED, above,
                                                below)

pytestmark = pytest.mark.unit

STUDY = "toy"


def _tables(values: dict[str, list[float]]) -> Tables:
    """A runs table of study ``toy``: one run per (group, seed) with ``test_metric`` = value."""
    rows = [{"run": f"{group}-{seed}", "study": STUDY, "cell": group, "group": group, "seed": seed,
             "status": "ok", "test_metric": v}
            for group, vs in values.items() for seed, v in enumerate(vs)]
    empty = pd.DataFrame(columns=["run", "step", "layer", "name", "quantity", "value"])
    return Tables(pd.DataFrame(rows), empty, pd.DataFrame(columns=["run", "step", "t", "quantity", "value"]))


BAR = Threshold("BAR", 0.5, "the value above which a group counts as large", 0.0, 2.0)


def _toy_claim(groups: tuple[str, ...] = ("a", "b"), claim_id: int = 99) -> Claim:
    def compute(t: Tables, th: ThresholdValues):
        parts = []
        for group in groups:
            runs = t.select(STUDY, group=group)
            parts.append(seed_part(f"{group} is large", runs["test_metric"].to_numpy(), above(th.BAR)))
        return parts

    return Claim(claim_id, "toy", "every group is large", (STUDY,), "test_metric", "above BAR", compute, (BAR,))


def test_a_claim_with_one_supported_and_one_contradicted_sub_claim_is_mixed_and_names_both():
    tables = _tables({"a": [1.0, 1.1, 0.9, 1.05, 0.95], "b": [0.1, 0.12, 0.08, 0.11, 0.09]})
    result = _toy_claim().evaluate(tables.runs, tables.layers, tables.timesteps, tables)
    assert result.would_be == MIXED
    assert result.deciding.name == "b is large" and result.deciding.verdict == CONTRADICTED
    assert result.counter.name == "a is large" and result.counter.verdict == SUPPORTED


@pytest.mark.parametrize("b, verdict", [([1.0, 1.1, 0.9, 1.05, 0.95], SUPPORTED),
                                        ([0.1, 0.12, 0.08, 0.11, 0.09], MIXED),
                                        ([0.2, 0.9, 0.4, 0.7, 0.3], INCONCLUSIVE)])
def test_summary_verdict_rules(b, verdict):
    tables = _tables({"a": [1.0, 1.1, 0.9, 1.05, 0.95], "b": b})
    assert _toy_claim().evaluate(tables.runs, tables.layers, tables.timesteps, tables).would_be == verdict


def test_every_sub_claim_contradicted_is_contradicted_and_none_with_data_is_no_data():
    low = [0.1, 0.12, 0.08, 0.11, 0.09]
    tables = _tables({"a": low, "b": low})
    assert _toy_claim().evaluate(tables.runs, tables.layers, tables.timesteps, tables).would_be == CONTRADICTED
    tables = _tables({"c": low})
    assert _toy_claim().evaluate(tables.runs, tables.layers, tables.timesteps, tables).would_be == NO_DATA


def test_holm_matches_the_worked_example():
    # Four hypotheses at alpha = 0.05 (Holm 1979; the example of Wikipedia's "Holm-Bonferroni
    # method"): sorted 0.005, 0.01, 0.03, 0.04 are compared with 0.05/4, 0.05/3, 0.05/2, 0.05/1;
    # the first two are rejected, the third is not, so testing stops. Adjusted p-values:
    # 4 x 0.005 = 0.02, 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, max(0.06, 0.04) = 0.06.
    p = [0.01, 0.04, 0.03, 0.005]
    adjusted = multiplicity.holm(p)
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    assert list(adjusted <= 0.05) == [True, False, False, True]
    assert list(multiplicity.holm_ranks(p)) == [2, 4, 3, 1]


def test_the_p_value_of_a_t_rule_is_scipys_one_sided_t_test():
    x = np.array([0.9, 1.3, 0.7, 1.1, 1.2, 0.8])
    part = seed_part("mean above 0.5", x, above(0.5))
    exact = stats.ttest_1samp(x, 0.5, alternative="greater").pvalue
    p = multiplicity.p_value(part)
    # Found on a grid and rounded up: never below the exact value, within 3 % of it.
    assert exact <= p <= exact * 1.03


def test_the_p_value_of_a_contradicted_log_rule_is_the_t_test_on_logs():
    x = np.array([0.5, 0.6, 0.55, 0.7, 0.45])
    part = seed_part("factor below 1", x, below(0.3), log=True)  # contradicted: the values lie above 0.3
    assert part.verdict == CONTRADICTED
    exact = stats.ttest_1samp(np.log(x), math.log(0.3), alternative="greater").pvalue
    assert exact <= multiplicity.p_value(part) <= exact * 1.03


def test_the_p_value_memo_tells_rules_and_observations_apart():
    values = [0.62, 0.58, 0.70, 0.55, 0.66]
    near, far = seed_part("near", values, above(0.5)), seed_part("far", values, above(0.3))
    assert near.verdict == far.verdict == SUPPORTED
    assert multiplicity.p_value(far) < multiplicity.p_value(near)
    # The same observations and rule give the memo's value; other observations their own.
    assert multiplicity.p_value(seed_part("again", values, above(0.5))) == multiplicity.p_value(near)
    shifted = seed_part("shifted", [v + 0.05 for v in values], above(0.5))
    assert multiplicity.p_value(shifted) < multiplicity.p_value(near)
    # Same numbers, log scale: another interval, another p-value.
    assert multiplicity.p_value(seed_part("log", values, above(0.5), log=True)) != multiplicity.p_value(near)
    # A rule made elsewhere (no ``rule``) is inverted every time, never memoized.
    custom = seed_part("custom", values, lambda value, low, high: above(0.5)(value, low, high))
    assert multiplicity.p_value(custom) == multiplicity.p_value(near)


def test_holm_turns_a_marginal_sub_claim_inconclusive_in_a_large_family():
    rng = np.random.default_rng(1)
    marginal = seed_part("marginal", [0.62, 0.58, 0.70, 0.55, 0.66], above(0.5))
    assert marginal.verdict == SUPPORTED and 0.001 < multiplicity.p_value(marginal) < 0.025
    strong = [seed_part(f"strong {i}", 10 + rng.normal(0, 0.1, 6), above(0.5)) for i in range(40)]
    undecided = [seed_part(f"null {i}", 0.5 + rng.normal(0, 0.2, 6), above(0.5)) for i in range(10)]
    assert all(p.verdict == INCONCLUSIVE for p in undecided)
    m = multiplicity.adjust([marginal, *strong, *undecided])
    assert m == 51
    # Holm: the 40 strong ones are rejected first; the marginal one is 41st of 51, compared
    # with 0.025 / 11, and fails.
    assert marginal.unadjusted == SUPPORTED and marginal.verdict == INCONCLUSIVE
    assert all(p.verdict == SUPPORTED for p in strong)
    assert marginal.confidence == pytest.approx(1 - 0.05 / (51 - 41 + 1))
    # The adjusted interval is the one its Holm step tests: wider than the 95 % one, and at
    # that confidence it reaches below the threshold.
    assert marginal.adj_low < marginal.ci_low and marginal.adj_low < 0.5
    # Without the undecided ones it is last of 41, compared with 0.025 itself: it survives.
    again = seed_part("marginal", [0.62, 0.58, 0.70, 0.55, 0.66], above(0.5))
    multiplicity.adjust([again, *[seed_part(p.name, 10 + rng.normal(0, 0.1, 6), above(0.5)) for p in strong]])
    assert again.verdict == SUPPORTED


def test_a_threshold_cannot_be_used_as_a_number_so_a_computation_must_read_th():
    with pytest.raises(TypeError):
        bool(np.float64(0.7) > BAR)
    assert f"{BAR:g}" == "0.5"
    th = ThresholdValues((BAR,), {"BAR": 0.7})
    assert th.BAR == 0.7
    with pytest.raises(KeyError, match="unknown threshold 'BAZ'"):
        ThresholdValues((BAR,), {"BAZ": 1.0})
    with pytest.raises(ValueError, match="low <= value <= high"):
        Threshold("X", 3.0, "", 0.0, 2.0)


def test_the_stable_range_of_a_threshold_is_where_the_rule_still_gives_the_verdict():
    # One sub-claim "mean above BAR": supported exactly while BAR lies below the lower bound of
    # the t interval (family of one: 95 %); the grid over [0, 2] has steps of 0.1.
    values = [1.0, 1.1, 0.9, 1.05, 0.95]
    tables = _tables({"a": values})
    low = intervals.seed_interval(values).low
    (found,) = sensitivity.claim_ranges(_toy_claim(("a",)), tables, others=[])
    grid = BAR.grid(sensitivity.GRID_POINTS)
    assert found.verdict == SUPPORTED
    assert found.open_low and not found.open_high
    assert found.low == 0.0
    assert found.high == max(v for v in grid if v < low)
    assert found.above == INCONCLUSIVE
    frame = sensitivity.ranges_frame([found])
    assert frame.loc[0, "stable_high"] == found.high and frame.loc[0, "verdict_above"] == INCONCLUSIVE


def test_the_sensitivity_over_forked_workers_is_the_one_of_a_single_process():
    tables = _tables({"a": [1.0, 1.1, 0.9, 1.05, 0.95], "b": [0.6, 0.7, 0.55, 0.65, 0.62], "c": [0.1, 0.2, 0.15]})
    claims = [_toy_claim(("a",), 97), _toy_claim(("a", "b"), 98), _toy_claim(("b", "c"), 99)]
    alone = sensitivity.ranges_frame(sensitivity.ledger_ranges(claims, tables, points=9))
    forked = sensitivity.ranges_frame(sensitivity.ledger_ranges(claims, tables, points=9, processes=2))
    pd.testing.assert_frame_equal(alone, forked)
    assert list(forked["claim"]) == [97, 98, 99]
    # Not a frame of one verdict: the stable ranges differ between the claims.
    assert forked["stable_high"].nunique() > 1


def test_a_per_tables_measure_is_computed_once_per_tables_and_arguments():
    from gradatlas.analysis.claims.summary import per_tables

    calls = []

    @per_tables
    def mean_of(t: Tables, group: str) -> float:
        calls.append(group)
        return float(t.select(STUDY, group=group)["test_metric"].mean())

    tables = _tables({"a": [1.0, 2.0], "b": [3.0, 5.0]})
    assert [mean_of(tables, "a"), mean_of(tables, "a"), mean_of(tables, "b")] == [1.5, 1.5, 4.0]
    assert calls == ["a", "b"]
    # A renamed view holds other runs under the same names: it computes its own.
    view = tables.renamed({STUDY: STUDY})
    assert mean_of(view, "a") == 1.5 and calls == ["a", "b", "a"]
    assert mean_of(_tables({"a": [7.0]}), "a") == 7.0


def test_the_seed_rule_matches_the_power_of_a_one_sided_t_test():
    # Pilot: effect 0.3 above a threshold of 0, spread 0.5. A new study of n seeds supports
    # "above 0" when its t interval's lower bound is above 0: power(n) = P(T > t_(1-a/2), n-1)
    # with T noncentral t (df n - 1, nc = 0.3 sqrt(n) / 0.5). The rule's n is the smallest
    # candidate with power >= 0.9 (simulated; allow the simulation's noise around 0.9).
    from gradatlas.analysis.claims import seeds as seed_rule

    rng = np.random.default_rng(3)
    pilot = 0.3 + 0.5 * (lambda z: (z - z.mean()) / z.std(ddof=1))(rng.normal(size=8))
    part = seed_part("above 0", pilot, above(0.0))
    part.confidence = 0.95

    def power(n: int) -> float:
        crit = stats.t.ppf(0.975, n - 1)
        return float(stats.nct.sf(crit, n - 1, 0.3 * math.sqrt(n) / 0.5))

    target, n, stability = seed_rule.seeds_for(part, np.random.default_rng(0))
    assert target == SUPPORTED
    candidates = [c for c in seed_rule.CANDIDATE_SEEDS if c >= 4]
    exact = next(c for c in candidates if power(c) >= 0.9)
    assert n in (candidates[candidates.index(exact) - 1], exact, candidates[candidates.index(exact) + 1])
    assert abs(stability - power(n)) < 0.03


def test_the_seed_rule_names_the_cells_and_leaves_an_effect_on_its_threshold_unreachable():
    from gradatlas.analysis.claims import seeds as seed_rule
    from gradatlas.analysis.claims.claim import ClaimResult
    from gradatlas.analysis.claims.measures import by_seed

    frame = pd.DataFrame({"study": STUDY, "cell": "depth-30", "seed": range(6), "v": [0.5, 0.7, 0.6, 0.65, 0.55, 0.6]})
    clear = seed_part("clear", by_seed(frame, frame["v"]), above(0.0))
    on_threshold = seed_part("on it", by_seed(frame, frame["v"]), above(0.6))
    needs = seed_rule.seed_needs({1: ClaimResult(SUPPORTED, SUPPORTED, 1.0, clear, "", (clear, on_threshold))})
    assert [n.part for n in needs] == ["clear", "on it"]
    assert needs[0].cells == ((STUDY, "depth-30"),) and needs[0].seeds == 4
    assert needs[1].seeds is None
    assert seed_rule.cell_seeds(needs) == {(STUDY, "depth-30"): (4, [needs[0]])}

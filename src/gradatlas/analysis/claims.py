"""The fifteen claims of the paper, each with stated parts, a verdict rule, intervals and a stability.

Every claim reads the summary tables (``runs``, ``layers``, ``timesteps``; see
``gradatlas.workflow.aggregate``) and returns its *parts*: one measured quantity each, with its value,
a 95% interval, the number of observations and a part verdict. *Decisive* parts vote,
*informational* parts are reported only. The claim's verdict:

- ``no data at this scale`` when none of the claim's studies is in the tables, or no decisive
  part found the cells it needs (a missing cell is never guessed or substituted);
- ``contradicted`` when any decisive part is contradicted;
- ``supported`` when every decisive part is supported (and none lacks data);
- ``inconclusive`` otherwise.

The *deciding part* is the one the ledger shows beside the verdict, never a headline that did
not decide: for ``contradicted`` the first contradicted part; for ``inconclusive`` the first
decisive part that is not supported; for ``supported`` (every part decided) the least stable
part, the one whose verdict a different draw of seeds would most likely change.

Stability. A verdict is only as good as its seeds. The *stability* is the share of
``STABILITY_DRAWS`` replicate draws whose verdict equals the observed one. A draw is another
draw of as many seeds, independently per part, of the part's own replicates: the per-seed
values of its cell (the per-seed differences of a pair of cells, so that the pairing holds;
the per-seed means of pooled cells) drawn from the posterior predictive of a normal model
(on the log scale for a positive quantity; ``intervals.normal_replicates``), which carries
the uncertainty of the mean and of the spread; the runs of each group for shares
(beta-binomial, ``intervals.binomial_replicates``); the runs themselves, resampled with
replacement, for claim 15's distribution-free median and for exact statements. Each part's interval and rule are
re-run on all draws at once (``gradatlas.analysis.intervals`` is vectorised over draws) from a fixed
RNG seed per claim and part, so the ledger is reproducible and takes well under a second. A verdict with stability
below ``STABLE`` is reported as ``inconclusive (unstable)``, with the would-be verdict and
the stability beside it.

Statistics (``gradatlas.analysis.intervals``). The seed is the replicate: a part that pools several
cells averages them per seed first. Per-seed values get a Student-t interval for n >= 4, the
seeds' range (min, max) for n = 2 or 3, and none for one seed; a part over fewer than
``MIN_SEEDS`` (4) seeds is shown but never gives ``supported`` or ``contradicted``. Positive quantities (norms, factors, ratios, deviations)
are summarised on the log scale (geometric mean, interval back-transformed, never negative);
their exact zeros are counted and stated, not logged. Shares of runs use Wilson intervals,
differences of shares Newcombe's, unpaired differences Welch's, the median relative error
of claim 15 the distribution-free order-statistic interval over runs. Exact statements need no interval.

Conventions. "Per-layer factor" is ``theory.measured_factor`` at step 0: exp(-slope) of a fit of
log backprop_norm over the hidden layers, comparable to sqrt(chi_1); layers flagged by the
``underflow`` probe (float32 gradient 0 or subnormal) are left out of every fit, and the
count is stated. "Skill" puts task metrics on one scale, 0 = chance and 1 = perfect:
(accuracy - chance) / (1 - chance), or (chance - mse) / chance for the adding problem. A
diverged run has no accuracy or loss (NaN; never counted as a number); a run that did not
diverge but ``failed_to_train`` (final training loss above its initial loss, or skill at
chance) is reported apart from diverged runs. Failed runs (crashes) are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Optional

import numpy as np
import pandas as pd

from gradatlas.analysis import intervals, theory

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NO_DATA = "no data at this scale"
UNSTABLE = "inconclusive (unstable)"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NO_DATA, UNSTABLE)

STABILITY_DRAWS = 1000
STABILITY_SEED = 0
STABLE = 0.9
# A part over seeds decides (supported or contradicted) from this many seeds on: below it the
# seeds' range is shown, and the part is inconclusive.
MIN_SEEDS = 4
# A cell is "at chance" when its mean skill is below FAIL_SKILL; a cell "learns" when the
# interval's lower bound of its skill is above TRAIN_SKILL.
FAIL_SKILL = 0.05
TRAIN_SKILL = 0.2
# log10 ratios of norms that hit exactly 0 (or overflow) are capped at this many decades.
CAP_DECADES = 30.0

RESULT_COLUMNS = ("claim", "title", "statement", "study", "metric", "parts", "deciding", "value", "ci_low",
                  "ci_high", "interval", "n", "verdict", "would_be", "stability", "rule", "detail")
PART_COLUMNS = ("claim", "part", "value", "ci_low", "ci_high", "interval", "n", "verdict", "stability",
                "decisive", "deciding", "note")
CI_NOTE = ("Intervals: 95%, over seeds (Student-t for n >= 4; the seeds' range for n = 2-3 and none for one "
           "seed, both leaving the part inconclusive; positive quantities on the log scale).")

# A part's rule: (value, low, high) -> verdict, elementwise on arrays (the stability draws).
Judge = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
# A part's draws: (rng, number of draws) -> the part verdict of each draw.
Draws = Callable[[np.random.Generator, int], np.ndarray]


# --------------------------------------------------------------------------------------------
# Verdict rules (elementwise: a scalar gives a str, an array an array of str)
# --------------------------------------------------------------------------------------------

def _verdicts(out: np.ndarray):
    return str(out) if np.ndim(out) == 0 else np.asarray(out, dtype=object)


def verdict_above(low, high, support: float, contradict: Optional[float] = None):
    """The claim says 'the quantity is large': supported if low > support, contradicted if
    high < contradict (default: support); NaN bounds give inconclusive."""
    contradict = support if contradict is None else contradict
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    return _verdicts(np.where(low > support, SUPPORTED, np.where(high < contradict, CONTRADICTED, INCONCLUSIVE)))


def verdict_below(low, high, support: float, contradict: Optional[float] = None):
    """The claim says 'the quantity is small': supported if high < support, contradicted if
    low > contradict (default: support); NaN bounds give inconclusive."""
    contradict = support if contradict is None else contradict
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    return _verdicts(np.where(high < support, SUPPORTED, np.where(low > contradict, CONTRADICTED, INCONCLUSIVE)))


def verdict_within(low, high, tolerance: float):
    """Equivalence: supported if the interval lies inside (-tol, tol), contradicted if entirely outside."""
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    inside = (-tolerance < low) & (high < tolerance)
    outside = (low > tolerance) | (high < -tolerance)
    return _verdicts(np.where(inside, SUPPORTED, np.where(outside, CONTRADICTED, INCONCLUSIVE)))


def above(support: float, contradict: Optional[float] = None) -> Judge:
    """The rule 'supported if the interval lies above ``support``' (see ``verdict_above``)."""
    return lambda value, low, high: verdict_above(low, high, support, contradict)


def below(support: float, contradict: Optional[float] = None) -> Judge:
    """The rule 'supported if the interval lies below ``support``' (see ``verdict_below``)."""
    return lambda value, low, high: verdict_below(low, high, support, contradict)


def within(tolerance: float) -> Judge:
    """The equivalence rule of ``verdict_within``."""
    return lambda value, low, high: verdict_within(low, high, tolerance)


def reported(value, low, high):
    """The rule of an informational part: it never decides."""
    return _verdicts(np.full(np.shape(low), INCONCLUSIVE, dtype=object))


def log10_ratio(num: float, den: float) -> float:
    """log10(num / den) for non-negative norms, capped at +-CAP_DECADES (0 / x = -cap)."""
    if not (np.isfinite(num) or num == np.inf) or not (np.isfinite(den) or den == np.inf):
        return math.nan
    if num <= 0 and den <= 0:
        return math.nan
    if num <= 0 or den == np.inf:
        return -CAP_DECADES
    if den <= 0 or num == np.inf:
        return CAP_DECADES
    return float(np.clip(math.log10(num / den), -CAP_DECADES, CAP_DECADES))


# --------------------------------------------------------------------------------------------
# Parts
# --------------------------------------------------------------------------------------------

@dataclass
class Part:
    """One measured quantity of a claim with its interval, part verdict and stability.

    ``draws`` recomputes the part verdict on replicate draws of its seeds (None: the verdict does not
    depend on the seeds, e.g. a part without data).
    """

    name: str
    value: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    n: int = 0
    verdict: str = NO_DATA
    note: str = ""
    decisive: bool = True
    interval: str = ""
    draws: Optional[Draws] = field(default=None, repr=False, compare=False)
    stability: float = math.nan

    def resample(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """The part verdict of ``count`` replicate draws."""
        if self.draws is None:
            return np.full(count, self.verdict, dtype=object)
        return np.asarray(self.draws(rng, count), dtype=object).reshape(count)

    def describe(self) -> str:
        """One line: name, value [interval] (method), n, verdict, stability (and note)."""
        text = f"{self.name}: {_fmt(self.value)}"
        if not (math.isnan(self.ci_low) or math.isnan(self.ci_high)):
            text += f" [{_fmt(self.ci_low)}, {_fmt(self.ci_high)}]"
        text += f" ({self.interval}), n={self.n}" if self.interval else f", n={self.n}"
        text += f" -> {self.verdict}" + ("" if self.decisive else " (informational)")
        if not math.isnan(self.stability):
            text += f", stability {self.stability:.2f}"
        return text + (f" ({self.note})" if self.note else "")


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    if float(x) == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.3g}"


def missing(name: str, note: str, decisive: bool = True) -> Part:
    """A part whose cells are absent from the tables."""
    return Part(name, note=note, decisive=decisive)


def fixed(name: str, verdict: str, note: str, decisive: bool = True) -> Part:
    """A part whose verdict follows from the design, not from a measurement (no interval)."""
    return Part(name, verdict=verdict, note=note, decisive=decisive)


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def seed_part(name: str, values: Iterable[float], judge: Judge, *, log: bool = False, note: str = "",
              decisive: bool = True, absent: str = "cells absent") -> Part:
    """A part from per-seed observations: value [interval] (``intervals.seed_summary``),
    ``judge`` and its replicate draws (``intervals.normal_replicates``).

    With ``log`` (a positive quantity) exact zeros are counted in the note and left out of the
    log-scale interval and its draws; all zeros give the exact value 0.
    """
    raw = intervals.finite(values)
    zeros = int((raw <= 0).sum()) if log else 0
    x = raw[raw > 0] if log else raw
    if zeros:
        note = _join(note, f"{zeros} of {len(raw)} seeds exactly 0, left out of the log-scale interval")
    if len(x) == 0:
        if zeros:
            verdict = judge(np.float64(0.0), np.float64(0.0), np.float64(0.0))
            return Part(name, 0.0, 0.0, 0.0, zeros, str(verdict), note, decisive, intervals.EXACT)
        return missing(name, _join(absent, note), decisive)
    iv = intervals.seed_interval(x, log)
    n = len(x)
    if n < MIN_SEEDS:
        # Shown (the seeds' range), not decided: every seed past a threshold is likely by
        # chance with 2 or 3 seeds, and resampling them cannot tell (it only repeats them).
        note = _join(note, f"{n} seed{'s' if n != 1 else ''}: shown, not decided (needs {MIN_SEEDS})")
        return Part(name, iv.value, iv.low, iv.high, n, INCONCLUSIVE, note, decisive, iv.method,
                    lambda rng, count: np.full(count, INCONCLUSIVE, dtype=object))

    def draws(rng: np.random.Generator, count: int) -> np.ndarray:
        drawn = intervals.normal_replicates(np.log(x) if log else x, count, rng)
        return judge(*intervals.seed_summary(np.exp(drawn) if log else drawn, log))

    return Part(name, iv.value, iv.low, iv.high, n, str(judge(iv.value, iv.low, iv.high)), note, decisive,
                iv.method, draws)


def share_part(name: str, k: int, n: int, judge: Judge, *, note: str = "", decisive: bool = True) -> Part:
    """A share of k runs out of n with its Wilson interval; draws are beta-binomial replicates."""
    if n == 0:
        return missing(name, "no runs", decisive)
    value, low, high = (float(v) for v in intervals.wilson_interval(k, n))

    def draws(rng: np.random.Generator, count: int) -> np.ndarray:
        return judge(*intervals.wilson_interval(intervals.binomial_replicates(k, n, count, rng), n))

    return Part(name, value, low, high, n, str(judge(value, low, high)), _join(note, f"{k} of {n}"), decisive,
                intervals.WILSON, draws)


def share_difference_part(name: str, k1: int, n1: int, k2: int, n2: int, judge: Judge, *, note: str = "",
                          decisive: bool = True) -> Part:
    """k1/n1 - k2/n2 with Newcombe's interval; draws are beta-binomial replicates of each group."""
    if n1 == 0 or n2 == 0:
        return missing(name, "needs runs in both groups", decisive)
    value, low, high = (float(v) for v in intervals.newcombe_interval(k1, n1, k2, n2))

    def draws(rng: np.random.Generator, count: int) -> np.ndarray:
        return judge(*intervals.newcombe_interval(intervals.binomial_replicates(k1, n1, count, rng), n1,
                                                  intervals.binomial_replicates(k2, n2, count, rng), n2))

    return Part(name, value, low, high, n1 + n2, str(judge(value, low, high)), note, decisive,
                intervals.NEWCOMBE, draws)


def welch_part(name: str, x: Iterable[float], y: Iterable[float], judge: Judge, *, note: str = "",
               decisive: bool = True) -> Part:
    """mean(x) - mean(y) of unpaired seeds with Welch's interval; draws are normal replicates of
    each group."""
    x, y = intervals.finite(x), intervals.finite(y)
    if len(x) == 0 or len(y) == 0:
        return missing(name, "needs both groups", decisive)
    value, low, high = (float(v) for v in intervals.welch_interval(x, y))

    def draws(rng: np.random.Generator, count: int) -> np.ndarray:
        return judge(*intervals.welch_interval(intervals.normal_replicates(x, count, rng),
                                               intervals.normal_replicates(y, count, rng)))

    return Part(name, value, low, high, len(x) + len(y), str(judge(value, low, high)), note, decisive,
                intervals.WELCH, draws)


def median_part(name: str, values: Iterable[float], judge: Judge, *, note: str = "",
                decisive: bool = True) -> Part:
    """The median of per-run values with its distribution-free interval; draws resample the runs."""
    x = intervals.finite(values)
    if len(x) == 0:
        return missing(name, "no measurable runs", decisive)
    value, low, high = (float(v) for v in intervals.median_interval(x))
    n = len(x)

    def draws(rng: np.random.Generator, count: int) -> np.ndarray:
        return judge(*intervals.median_interval(x[rng.integers(0, n, size=(count, n))]))

    return Part(name, value, low, high, n, str(judge(value, low, high)), note, decisive, intervals.MEDIAN, draws)


def exact_zero_part(name: str, peaks: Iterable[float], note: str = "", decisive: bool = True) -> Part:
    """'Exactly zero in every run': the largest |value| over runs (one peak per run) must be 0;
    draws resample the runs."""
    x = np.abs(intervals.finite(peaks))
    if len(x) == 0:
        return missing(name, "no probed values", decisive)
    n = len(x)

    def verdict(peak):
        return _verdicts(np.where(np.asarray(peak) == 0.0, SUPPORTED, CONTRADICTED))

    def draws(rng: np.random.Generator, count: int) -> np.ndarray:
        return verdict(x[rng.integers(0, n, size=(count, n))].max(axis=1))

    peak = float(x.max())
    return Part(name, peak, math.nan, math.nan, n, str(verdict(peak)), note, decisive, intervals.EXACT, draws)


# --------------------------------------------------------------------------------------------
# Claims: verdict, deciding part, stability
# --------------------------------------------------------------------------------------------

def combine_array(verdicts: np.ndarray, decisive: np.ndarray) -> np.ndarray:
    """Claim verdicts from part verdicts (rows: parts, columns: draws; rules in the module
    docstring)."""
    v = np.asarray(verdicts, dtype=object)[np.asarray(decisive, dtype=bool)]
    count = v.shape[1] if v.ndim == 2 else 0
    if v.shape[0] == 0:
        return np.full(count, NO_DATA, dtype=object)
    has_data = v != NO_DATA
    out = np.full(v.shape[1], INCONCLUSIVE, dtype=object)
    out[(v == SUPPORTED).all(axis=0)] = SUPPORTED
    out[(v == CONTRADICTED).any(axis=0)] = CONTRADICTED
    out[~has_data.any(axis=0)] = NO_DATA
    return out


def combine(parts: list[Part]) -> str:
    """The claim verdict from its parts (rules in the module docstring)."""
    if not parts:
        return NO_DATA
    verdicts = np.array([[p.verdict] for p in parts], dtype=object)
    return str(combine_array(verdicts, np.array([p.decisive for p in parts]))[0])


def stability(parts: list[Part], claim_id: int, draws: int = STABILITY_DRAWS, seed: int = STABILITY_SEED
              ) -> tuple[str, float]:
    """The claim verdict and its stability: the share of ``draws`` replicate draws whose
    verdict is the same. Sets each part's own ``stability`` on the way.

    Each part draws from its own RNG stream (seeded by ``seed``, the claim and the part's
    position), so adding a part does not change the draws of the others.
    """
    verdict = combine(parts)
    if not parts:
        return verdict, math.nan
    rows = []
    for index, part in enumerate(parts):
        rng = np.random.default_rng([seed, claim_id, index])
        row = part.resample(rng, draws)
        part.stability = float(np.mean(row == part.verdict))
        rows.append(row)
    drawn = combine_array(np.vstack(rows), np.array([p.decisive for p in parts]))
    return verdict, float(np.mean(drawn == verdict))


def deciding_part(parts: list[Part], verdict: str) -> Optional[Part]:
    """The part that decided ``verdict`` (see the module docstring), or None without parts."""
    decisive = [p for p in parts if p.decisive]
    if not decisive:
        return None
    if verdict == CONTRADICTED:
        return next(p for p in decisive if p.verdict == CONTRADICTED)
    if verdict == SUPPORTED:
        return min(decisive, key=lambda p: (p.stability if not math.isnan(p.stability) else 1.0))
    return next((p for p in decisive if p.verdict != SUPPORTED), decisive[0])


def reported_verdict(verdict: str, stable: float) -> str:
    """The verdict the ledger reports: ``UNSTABLE`` when its stability is below ``STABLE``."""
    return UNSTABLE if not math.isnan(stable) and stable < STABLE else verdict


@dataclass(frozen=True)
class ClaimResult:
    """The evaluated claim: its deciding part, the verdict (reported and would-be), the
    stability and every part."""

    verdict: str
    would_be: str
    stability: float
    deciding: Optional[Part]
    detail: str
    parts: tuple[Part, ...] = ()

    @property
    def value(self) -> float:
        """The deciding part's value (NaN without one)."""
        return self.deciding.value if self.deciding else math.nan

    @property
    def ci_low(self) -> float:
        """The deciding part's lower bound."""
        return self.deciding.ci_low if self.deciding else math.nan

    @property
    def ci_high(self) -> float:
        """The deciding part's upper bound."""
        return self.deciding.ci_high if self.deciding else math.nan

    @property
    def n(self) -> int:
        """The deciding part's number of observations."""
        return self.deciding.n if self.deciding else 0


@dataclass(frozen=True)
class Claim:
    """One claim: what it says, the studies it reads, its parts in words, rule and computation."""

    id: int
    title: str
    statement: str
    studies: tuple[str, ...]
    metric: str
    rule: str
    compute: Optional[Callable[["Tables"], list[Part]]] = field(default=None, repr=False, compare=False)

    def evaluate(self, runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame,
                 tables: Optional["Tables"] = None, draws: int = STABILITY_DRAWS) -> ClaimResult:
        """Compute the parts, the verdict and its stability; ``tables`` shares caches between claims."""
        tables = tables or Tables(runs, layers, timesteps)
        present = [s for s in self.studies if tables.has_study(s)]
        if not present:
            return ClaimResult(NO_DATA, NO_DATA, math.nan, None,
                               f"studies not in the tables: {', '.join(self.studies)}")
        if self.compute is None:
            raise ValueError(f"claim {self.id} has no compute function")
        parts = self.compute(tables)
        if not parts:
            return ClaimResult(NO_DATA, NO_DATA, math.nan, None, "no cells for this claim")
        verdict, stable = stability(parts, self.id, draws)
        return ClaimResult(reported_verdict(verdict, stable), verdict, stable, deciding_part(parts, verdict),
                           "; ".join(p.describe() for p in parts), tuple(parts))


# --------------------------------------------------------------------------------------------
# Access to the tables
# --------------------------------------------------------------------------------------------

class Tables:
    """The three summary tables with per-run lookups (layers split by run once, lazily)."""

    def __init__(self, runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> None:
        self.runs = runs.copy()
        for column in ("run", "study", "cell", "model", "activation", "init", "norm", "data", "clip", "status", "metric"):
            if column in self.runs:
                self.runs[column] = self.runs[column].astype(str)
        if "status" in self.runs:
            self.runs = self.runs[self.runs["status"] != "failed"]
        else:  # a table without statuses: every run finished
            self.runs["status"] = "ok"
        self.layers = layers
        self.timesteps = timesteps
        self._layers_by_run: Optional[dict[str, theory.LayerArrays]] = None
        self._timesteps_by_run: Optional[dict[str, pd.DataFrame]] = None
        self._factor: dict[str, tuple[float, int]] = {}

    def has_study(self, study: str) -> bool:
        """Whether any (non-failed) run of ``study`` is in the tables."""
        return bool((self.runs["study"] == study).any()) if "study" in self.runs else False

    def select(self, study: str, **factors) -> pd.DataFrame:
        """Runs of ``study`` whose factors equal the given values (a list/tuple: any of them)."""
        frame = self.runs[self.runs["study"] == study] if "study" in self.runs else self.runs.iloc[0:0]
        for name, value in factors.items():
            if name not in frame:
                return frame.iloc[0:0]
            if isinstance(value, (list, tuple, set)):
                frame = frame[frame[name].isin(list(value))]
            else:
                frame = frame[frame[name] == value]
        return frame

    @staticmethod
    def _split(frame: pd.DataFrame, keys: tuple[str, ...]) -> dict[str, pd.DataFrame]:
        """A long table split by run, keeping only ``keys``."""
        if frame is None or frame.empty or "run" not in frame:
            return {}
        # Only the measurement columns: the factor columns would be copied with every slice.
        frame = frame[[c for c in keys if c in frame]]
        return {str(key): part for key, part in frame.groupby("run", observed=True, sort=False)}

    def layers_of(self, run: str) -> theory.LayerArrays:
        """The layers rows of one run as arrays (empty if it has none)."""
        if self._layers_by_run is None:
            columns = [c for c in theory.LAYER_KEYS if c in self.layers]
            self._layers_by_run = theory.split_layers(self.layers[columns]) if len(self.layers) else {}
        return self._layers_by_run.get(str(run), _EMPTY_LAYERS)

    def timesteps_of(self, run: str) -> pd.DataFrame:
        """The timesteps rows of one run (empty if it has none)."""
        if self._timesteps_by_run is None:
            self._timesteps_by_run = self._split(self.timesteps, ("run", "step", "t", "quantity", "value"))
        return self._timesteps_by_run.get(str(run), _EMPTY_TIMESTEPS)

    def fit_layers(self, run: str, step: int = 0) -> tuple[theory.LayerArrays, int]:
        """The layers rows of a run without the (step, layer)s that the ``underflow`` probe flags
        (float32 gradient 0 or subnormal: not a measurement to fit), and how many hidden layers
        at ``step`` were flagged."""
        part = self.layers_of(run)
        flagged = part.hidden & (part.quantity == "underflow") & (part.value > 0)
        if not flagged.any():
            return part, 0
        key = part.step * (int(part.layer.max()) + 1) + part.layer  # one integer per (step, layer)
        keep = ~np.isin(key, key[flagged]) | (part.quantity == "underflow")
        count = int((flagged & (part.step == step)).sum())
        return theory.LayerArrays(part.step[keep], part.layer[keep], part.hidden[keep], part.quantity[keep],
                                  part.value[keep]), count

    def factor(self, run: str) -> float:
        """The measured per-layer factor of a run at step 0, underflowing layers left out (cached)."""
        return self._factor_and_flags(run)[0]

    def underflow_count(self, run: str) -> int:
        """Hidden layers of a run flagged by ``underflow`` at step 0 (left out of its factor fit)."""
        return self._factor_and_flags(run)[1]

    def _factor_and_flags(self, run: str) -> tuple[float, int]:
        if run not in self._factor:
            part, count = self.fit_layers(run, 0)
            self._factor[run] = (theory.measured_factor(part) if len(part) else math.nan, count)
        return self._factor[run]

    def profile(self, run: str, quantity: str, step: Optional[int] = 0) -> pd.Series:
        """``quantity`` over the hidden layers of a run at ``step`` (None: mean over steps)."""
        return self.layers_of(run).profile(quantity, step)

    def last_step(self, run: str) -> Optional[int]:
        """The last probed step of a run, or None."""
        return self.layers_of(run).last_step()

    def has_quantity(self, quantity: str) -> bool:
        """Whether the layers table holds ``quantity`` at all (older summaries lack new probes)."""
        return "quantity" in self.layers and bool((self.layers["quantity"].astype(str) == quantity).any())


_EMPTY_LAYERS = theory.LayerArrays.from_frame(pd.DataFrame(columns=["step", "layer", "name", "quantity", "value"]))
_EMPTY_TIMESTEPS = pd.DataFrame(columns=["run", "step", "t", "quantity", "value"])


def _diverged(runs: pd.DataFrame) -> pd.Series:
    if "status" not in runs:
        return pd.Series(False, index=runs.index)
    return runs["status"].astype(str) == "diverged"


def skill(runs: pd.DataFrame) -> pd.Series:
    """Task skill per run: 0 = chance, 1 = perfect; NaN for a diverged run (its accuracy is
    undefined, never counted as a number)."""
    metric = runs["metric"].astype(str)
    chance = runs["chance"].astype(float)
    value = runs["test_metric"].astype(float)
    acc = (value - chance) / (1.0 - chance)
    mse = (chance - value) / chance
    out = pd.Series(np.where(metric == "mse", mse, acc), index=runs.index, dtype=float)
    out[_diverged(runs)] = math.nan
    return out


def outcome(runs: pd.DataFrame) -> pd.Series:
    """Test metric per run; NaN for a diverged run."""
    value = runs["test_metric"].astype(float).copy()
    value[_diverged(runs)] = math.nan
    return value


def failed_to_train(runs: pd.DataFrame) -> pd.Series:
    """Whether a run that did not diverge failed to train: its final training loss is above its
    initial loss (``first_loss``) or not finite, or its test skill is at chance (below
    ``FAIL_SKILL``). Diverged runs are False here: they are counted as diverged, apart.

    The one definition of "failed to train" (tables and figures use it too).
    """
    final, first = runs["final_train_loss"].astype(float), runs["first_loss"].astype(float)
    worse = ~np.isfinite(final) | (final > first)
    chance = skill(runs) < FAIL_SKILL
    return (worse | chance) & ~_diverged(runs)


def diverged_note(runs: pd.DataFrame) -> str:
    """'k diverged runs left out' when there are any."""
    k = int(_diverged(runs).sum())
    return f"{k} diverged run{'s' if k != 1 else ''} left out (no accuracy)" if k else ""


def by_seed(frame: pd.DataFrame, values: pd.Series | Iterable[float]) -> pd.Series:
    """``values`` (aligned with ``frame``) indexed by the runs' seeds, averaged per seed."""
    series = pd.Series(list(values), index=frame["seed"].to_numpy(), dtype=float)
    return series.groupby(level=0).mean()


def paired(a: pd.Series, b: pd.Series) -> pd.Series:
    """a - b over the seeds (index) both have, indexed by seed."""
    common = a.index.intersection(b.index)
    return (a[common] - b[common]).astype(float)


def ratio(a: pd.Series, b: pd.Series) -> pd.Series:
    """a / b over the seeds (index) both have, indexed by seed (for positive quantities)."""
    common = a.index.intersection(b.index)
    return (a[common] / b[common]).astype(float)


def seed_mean(pieces: Iterable[pd.Series]) -> pd.Series:
    """Per-seed observations from several cells, averaged per seed (the seed is the replicate)."""
    pieces = [p for p in pieces if len(p)]
    if not pieces:
        return pd.Series(dtype=float)
    return pd.concat(pieces).groupby(level=0).mean()


def deepest(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` at its largest depth."""
    if frame.empty:
        return frame
    return frame[frame["depth"] == frame["depth"].max()]


def first_last_ratio(profile: pd.Series) -> float:
    """log10 of the first over the last hidden layer's value (capped, see ``log10_ratio``)."""
    if len(profile) < 2:
        return math.nan
    return log10_ratio(float(profile.iloc[0]), float(profile.iloc[-1]))


def _mlp(tables: Tables, study: str, **factors) -> pd.DataFrame:
    frame = tables.select(study, **factors)
    if "model" in frame:
        frame = frame[frame["model"] == "mlp"]
    return frame


def _factors(t: Tables, runs: pd.DataFrame) -> tuple[pd.Series, str]:
    """Per-seed measured factors of ``runs`` and a note on the underflowing layers left out."""
    values = by_seed(runs, [t.factor(r) for r in runs["run"]]) if not runs.empty else pd.Series(dtype=float)
    flagged = sum(t.underflow_count(r) for r in runs["run"])
    note = f"{flagged} underflowing layer(s) left out of the fits" if flagged else ""
    return values, note


# --------------------------------------------------------------------------------------------
# The claims
# --------------------------------------------------------------------------------------------

def _claim1(t: Tables) -> list[Part]:
    runs = deepest(_mlp(t, "depth_activation_init", activation="sigmoid", init="default", norm="none"))
    if runs.empty:
        return [missing("per-layer factor, sigmoid/default, deepest depth", "no sigmoid/default runs")]
    depth = int(runs["depth"].iloc[0])
    factors, flagged = _factors(t, runs)
    updates, undefined, endpoints, fits = [], 0, [], []
    for r in runs["run"]:
        ur = t.profile(r, "update_ratio", step=None)
        last = float(ur.iloc[-1]) if len(ur) >= 2 else math.nan
        if last > 0:
            updates.append(float(ur.iloc[0]) / last)
        else:  # no update of the last layer: the ratio is undefined (counted, not guessed)
            undefined += int(last == 0.0)
            updates.append(math.nan)
        endpoints.append(first_last_ratio(t.profile(r, "backprop_norm")))
        fit_layers, _ = t.fit_layers(r)
        fits.append(theory.factor_fit(fit_layers)["r2"] if len(fit_layers) else math.nan)
    zero_note = f"{undefined} run(s) whose last layer did not move left out" if undefined else ""
    return [
        seed_part(f"per-layer factor (depth {depth})", factors, below(1.0), log=True, note=flagged),
        seed_part("update ratio first / last hidden layer (mean over probes)", by_seed(runs, updates),
                  below(0.1, 0.5), log=True, note=zero_note),
        seed_part("log10 backprop norm first/last hidden layer", by_seed(runs, endpoints), reported, decisive=False),
        seed_part("R^2 of the log-linear fit", by_seed(runs, fits), reported, decisive=False),
    ]


def _claim2(t: Tables) -> list[Part]:
    base = _mlp(t, "depth_activation_init", init="default", norm="none")
    tanh, sigm = base[base["activation"] == "tanh"], base[base["activation"] == "sigmoid"]
    depths = set(tanh["depth"]) & set(sigm["depth"])
    if not depths:
        return [missing("per-layer factor tanh / sigmoid", "needs tanh and sigmoid with default init at a common depth")]
    depth = max(depths)
    tanh, sigm = tanh[tanh["depth"] == depth], sigm[sigm["depth"] == depth]
    f_tanh, n_tanh = _factors(t, tanh)
    f_sigm, n_sigm = _factors(t, sigm)
    return [
        seed_part(f"per-layer factor tanh / sigmoid (depth {int(depth)}, paired by seed)", ratio(f_tanh, f_sigm),
                  above(1.0), log=True, note=_join(n_tanh, n_sigm)),
        seed_part("per-layer factor tanh", f_tanh, below(1.0), log=True, note=n_tanh),
        seed_part("per-layer factor sigmoid", f_sigm, reported, log=True, decisive=False, note=n_sigm),
    ]


def _claim3(t: Tables) -> list[Part]:
    relu = _mlp(t, "depth_activation_init", activation="relu", init="he_normal", norm="none")
    if relu.empty:
        return [missing("log10 max/min backprop norm, relu/he", "no relu/he_normal runs")]
    top = deepest(relu)
    spreads, flagged, capped = [], 0, 0
    for r in top["run"]:
        part, count = t.fit_layers(r)
        flagged += count
        norms = part.profile("backprop_norm", 0).to_numpy()
        norms = norms[np.isfinite(norms)]
        capped += int(len(norms) >= 2 and norms.min() == 0.0)
        spreads.append(log10_ratio(float(norms.max()), float(norms.min())) if len(norms) >= 2 else math.nan)
    notes = [f"{flagged} underflowing layer(s) left out" if flagged else "",
             f"{capped} run(s) with a layer passing exactly no gradient, counted as {CAP_DECADES:g} decades"
             if capped else ""]
    parts = [seed_part(f"log10 max/min backprop norm over hidden layers (depth {int(top['depth'].iloc[0])})",
                       by_seed(top, spreads), below(1.0), note=_join(*notes))]
    sigm = _mlp(t, "depth_activation_init", activation="sigmoid", init="default", norm="none")
    name = "skill of relu/he where sigmoid/default is at chance"
    if sigm.empty:
        parts.append(missing(name, "no sigmoid/default runs"))
        return parts
    sigm_skill = sigm.assign(skill=skill(sigm)).groupby("depth")["skill"].mean()
    failing = sigm_skill[sigm_skill < FAIL_SKILL]
    if failing.empty:
        parts.append(fixed(name, INCONCLUSIVE,
                           f"sigmoid/default is above chance at every depth ({', '.join(f'{d:g}' for d in sigm_skill.index)})"))
        return parts
    depth = failing.index.max()
    at = relu[relu["depth"] == depth]
    parts.append(seed_part(f"skill of relu/he at depth {depth:g} (sigmoid/default skill {failing[depth]:.3g})",
                           by_seed(at, skill(at)), above(TRAIN_SKILL, FAIL_SKILL), note=diverged_note(at),
                           absent=f"no relu/he run at depth {depth:g}"))
    return parts


PRESERVING_INIT = {"relu": "he_normal", "leaky_relu": "he_normal", "prelu": "he_normal", "elu": "he_normal",
                   "silu": "he_normal", "gelu": "he_normal", "tanh": "xavier_normal", "sigmoid": "xavier_normal",
                   "selu": "lecun_normal", "linear": "xavier_normal"}


def _between(small: float, big: float) -> Judge:
    """Supported if the interval lies between the two bounds, contradicted if the value does not."""
    def judge(value, low, high):
        value, low, high = (np.asarray(v, dtype=np.float64) for v in (value, low, high))
        inside = (low > small) & (high < big)
        outside = (value <= small) | (value >= big)
        return _verdicts(np.where(inside, SUPPORTED, np.where(outside, CONTRADICTED, INCONCLUSIVE)))
    return judge


def _claim4(t: Tables) -> list[Part]:
    scale = _mlp(t, "init_scale", init="normal", norm="none")
    if scale.empty:
        return [missing("per-layer factor at std 1.0", "no init_scale runs")]
    activations = sorted(scale["activation"].unique(), key=lambda a: (a != "relu", a))
    parts: list[Part] = []
    for act in activations:
        runs = scale[scale["activation"] == act]
        big, small = runs[runs["init_std"] >= 1.0], runs[runs["init_std"] <= 0.01]
        if not big.empty:
            big = big[big["init_std"] == big["init_std"].min()]
        if not small.empty:
            small = small[small["init_std"] == small["init_std"].max()]
        f_big, n_big = _factors(t, big)
        f_small, n_small = _factors(t, small)
        p_big = seed_part(f"{act}: per-layer factor at std 1.0", f_big, above(1.0), log=True, note=n_big,
                          absent="no run with std >= 1.0")
        p_small = seed_part(f"{act}: per-layer factor at std 0.01", f_small, below(1.0), log=True, note=n_small,
                            absent="no run with std <= 0.01")
        parts += [p_big, p_small]
        init = PRESERVING_INIT.get(act, "he_normal")
        ref = deepest(_mlp(t, "depth_activation_init", activation=act, init=init, norm="none"))
        f_ref, n_ref = _factors(t, ref)
        if math.isnan(p_small.value) or math.isnan(p_big.value):
            parts.append(missing(f"{act}: per-layer factor with {init}", "needs both std 0.01 and std 1.0"))
        else:
            # The bounds are the two geometric means, held fixed in the stability draws.
            parts.append(seed_part(f"{act}: per-layer factor with {init} (depth_activation_init), between "
                                   f"{p_small.value:.3g} and {p_big.value:.3g}", f_ref,
                                   _between(p_small.value, p_big.value), log=True, note=n_ref,
                                   absent=f"no {act}/{init} runs in depth_activation_init"))
    return parts


# A unit is dead when |phi'(z)| stays below this share of sup|phi'| for every example of the
# probe set (the probe's definition; stated here for the rule's text).
DEAD_SHARE_NOTE = "|phi'| below the probe's stated share of its sup for every example of the fixed probe set"
ALTERNATIVE_DEAD_MAX = 0.01


def _layer_mean(t: Tables, run: str, quantity: str, last: bool) -> float:
    """Mean of ``quantity`` over the hidden layers of a run at step 0 or its last probe."""
    step = t.last_step(run) if last else 0
    if step is None:
        return math.nan
    profile = t.profile(run, quantity, step)
    return float(profile.mean()) if len(profile) else math.nan


def _claim5(t: Tables) -> list[Part]:
    runs = _mlp(t, "dying_relu")
    if not (t.has_quantity("died_frac") and t.has_quantity("dead_frac")):
        return [missing("relu units dying during training (died_frac)",
                        "the summary lacks the dead_frac/died_frac probes on the fixed probe set")]
    # A diverged run's last probe measures NaN weights, not dying: its died_frac is left out.
    died = [math.nan if status == "diverged" else _layer_mean(t, r, "died_frac", True)
            for r, status in zip(runs["run"], runs["status"])]
    runs = runs.assign(bias0=runs["bias"].fillna(0.0).astype(float), died=died,
                       dead0=[_layer_mean(t, r, "dead_frac", False) for r in runs["run"]])
    relu = runs[runs["activation"] == "relu"]
    parts: list[Part] = []
    # Dying during training grows with the lr: largest - smallest lr, per bias, paired by seed.
    diffs = []
    for _, cell in relu.groupby("bias0"):
        if cell["lr"].nunique() >= 2:
            high, low = cell[cell["lr"] == cell["lr"].max()], cell[cell["lr"] == cell["lr"].min()]
            diffs.append(paired(by_seed(high, high["died"]), by_seed(low, low["died"])))
    parts.append(seed_part("relu units died during training (died_frac, last probe), largest - smallest lr",
                           seed_mean(diffs), above(0.0), note=diverged_note(relu),
                           absent="needs relu runs at two learning rates"))
    # A negative bias kills units at initialization, whatever the lr (an init effect, apart).
    diffs = []
    for _, cell in relu.groupby("lr"):
        neg, zero = cell[cell["bias0"] == cell["bias0"].min()], cell[cell["bias0"] == 0.0]
        if cell["bias0"].min() < 0 and not zero.empty:
            diffs.append(paired(by_seed(neg, neg["dead0"]), by_seed(zero, zero["dead0"])))
    parts.append(seed_part("relu units dead at initialization (dead_frac, step 0), most negative bias - bias 0",
                           seed_mean(diffs), above(0.0), absent="needs relu runs with bias 0 and < 0"))
    for act in ("leaky_relu", "prelu", "elu"):
        alt = runs[runs["activation"] == act]
        if alt.empty:
            continue
        peak = float(np.nanmax(alt["died"])) if alt["died"].notna().any() else math.nan
        parts.append(seed_part(f"{act}: units died during training (died_frac, last probe; all lrs and biases)",
                               by_seed(alt, alt["died"]), below(ALTERNATIVE_DEAD_MAX),
                               note=_join(f"max over runs {_fmt(peak)}", diverged_note(alt))))
        parts.append(seed_part(f"{act}: units dead at initialization (dead_frac, step 0)",
                               by_seed(alt, alt["dead0"]), reported, decisive=False))
    prelu = runs[runs["activation"] == "prelu"]
    changes = []
    for r, status in zip(prelu["run"], prelu["status"]):
        step = t.last_step(r)
        first, last = t.profile(r, "prelu_slope", 0), t.profile(r, "prelu_slope", step)
        usable = status != "diverged" and len(first) and len(last) and step
        changes.append(float((last - first).abs().mean()) if usable else math.nan)
    parts.append(seed_part("PReLU mean |slope change|", by_seed(prelu, changes) if len(prelu) else [],
                           reported, log=True, decisive=False, note=diverged_note(prelu), absent="no PReLU runs"))
    return parts


UPDATE_VANISHED = 1e-4  # a first-layer update ratio below this is "near-zero change"
UPDATE_MOVES = 1e-2


def _weight_growth(t: Tables, runs: pd.DataFrame) -> tuple[list[float], str]:
    """Per run: weight norm at the last probe over step 0; a note on the runs it cannot measure."""
    growth, early, overflow = [], 0, 0
    for r in runs["run"]:
        step = t.last_step(r)
        before = t.profile(r, "weight_norm", 0)
        if not step:  # the run never reached a second probe (diverged at once): no growth to measure
            early += 1
            growth.append(math.nan)
            continue
        after = float(t.profile(r, "weight_norm", step).sum())
        if not np.isfinite(after):
            overflow += 1
            growth.append(math.nan)
            continue
        growth.append(after / float(before.sum()) if len(before) else math.nan)
    notes = []
    if early:
        notes.append(f"{early} run(s) without a probe after step 0 (diverged before it): growth not measurable")
    if overflow:
        notes.append(f"{overflow} run(s) with overflowed (non-finite) weights at the last probe")
    return growth, _join(*notes)


def _claim6(t: Tables) -> list[Part]:
    scale = _mlp(t, "init_scale", init="normal", norm="none")
    small = scale[scale["init_std"] <= 0.01]
    small = small[small["init_std"] == small["init_std"].max()] if not small.empty else small
    parts: list[Part] = []
    if small.empty:
        parts.append(missing("vanishing (std 0.01): first-layer update ratio", "no init_scale run with std <= 0.01"))
    for act, cell in small.groupby("activation"):
        first, zero_probes, probes = [], 0, 0
        for r in cell["run"]:
            part = t.layers_of(r)
            mask = part.hidden & (part.quantity == "update_ratio")
            if mask.any():  # the first hidden layer's update ratio at every probe
                values = part.value[mask & (part.layer == part.layer[mask].min())]
                values = values[np.isfinite(values)]
                zero_probes += int((values == 0.0).sum())
                probes += len(values)
                first.append(float(values.mean()) if len(values) else math.nan)
            else:
                first.append(math.nan)
        zeros = f"{zero_probes} of {probes} probed first-layer update ratios exactly 0" if zero_probes else ""
        parts.append(seed_part(f"vanishing ({act}, std 0.01): first-layer update ratio (mean over probes)",
                               by_seed(cell, first), below(UPDATE_VANISHED, UPDATE_MOVES), log=True, note=zeros))
        drop = (cell["first_loss"] - cell["final_train_loss"]) / cell["first_loss"]
        parts.append(seed_part(f"vanishing ({act}, std 0.01): relative loss decrease", by_seed(cell, drop),
                               below(0.05, 0.25), note=diverged_note(cell)))
    big = scale[scale["init_std"] >= 1.0]
    big = big[big["init_std"] == big["init_std"].min()] if not big.empty else big
    exploding = {"init_scale std 1.0": big, "clipping_mlp unclipped": _mlp(t, "clipping_mlp", clip="none")}
    if all(frame.empty for frame in exploding.values()):
        parts.append(missing("exploding: weight growth and divergence", "no init_scale std 1.0 or unclipped clipping_mlp runs"))
    for label, frame in exploding.items():
        for act, cell in frame.groupby("activation"):
            growth, note = _weight_growth(t, cell)
            parts.append(seed_part(f"exploding ({act}, {label}): weight-norm growth, last probe / init",
                                   by_seed(cell, growth), above(1.5, 1.0), log=True, note=note,
                                   absent="no run with a probe after step 0"))
            k = int((cell["status"] == "diverged").sum())
            parts.append(share_part(f"exploding ({act}, {label}): share of runs that diverge", k, len(cell),
                                    above(0.5)))
    return parts


def _kept_decay(t: Tables, run: str) -> tuple[float, int]:
    """log10 first/last hidden backprop norm at step 0 over the layers not flagged by ``underflow``,
    and how many were flagged."""
    part, count = t.fit_layers(run, 0)
    return first_last_ratio(part.profile("backprop_norm", 0)), count


def _capped_note(values: Iterable[float]) -> str:
    """How many log10 ratios sit at the cap (a norm of exactly 0), said rather than hidden."""
    k = int(np.sum(np.abs(intervals.finite(values)) >= CAP_DECADES))
    return f"{k} run(s) with a norm of exactly 0, counted as {CAP_DECADES:g} decades" if k else ""


def _claim7(t: Tables) -> list[Part]:
    runs = _mlp(t, "normalization", activation=["sigmoid", "tanh"])
    parts: list[Part] = []
    layer_parts: list[Part] = []
    decay = {r: _kept_decay(t, r) for r in runs["run"]}
    flagged = sum(count for _, count in decay.values())
    underflow = _join(f"{flagged} underflowing layer(s) left out of the study" if flagged else "",
                      _capped_note(v for v, _ in decay.values()))
    for (act, depth), cell in runs.groupby(["activation", "depth"]):
        ratios = {norm: by_seed(sub, [decay[r][0] for r in sub["run"]]) for norm, sub in cell.groupby("norm")}
        if "none" in ratios and "batch" in ratios:
            parts.append(seed_part(f"{act}, depth {depth:g}: gain in log10 first/last backprop norm, batch - none",
                                   paired(ratios["batch"], ratios["none"]), above(0.0), note=underflow))
        if "none" in ratios and "layer" in ratios:
            layer_parts.append(seed_part(f"{act}, depth {depth:g}: gain with layer norm - none",
                                         paired(ratios["layer"], ratios["none"]), reported, decisive=False))
    if not parts:
        parts.append(missing("gain in log10 first/last backprop norm, batch - none", "needs norm none and batch"))
    deep = deepest(runs[(runs["activation"] == "sigmoid") & (runs["norm"] == "batch")])
    ratio_deep = by_seed(deep, [decay[r][0] for r in deep["run"]]) if not deep.empty else []
    depth = f" (depth {int(deep['depth'].iloc[0])})" if not deep.empty else ""
    parts.append(seed_part(f"sigmoid + batch norm, deepest: log10 first/last backprop norm{depth}", ratio_deep,
                           below(-1.0, -0.5), absent="no sigmoid + batch norm runs"))
    return parts + layer_parts


def _bad_outcome_part(name: str, runs: pd.DataFrame, decisive: bool = True) -> Part:
    """Share of runs that diverged or failed to train, unclipped - clipped (Newcombe)."""
    none, clipped = runs[runs["clip"] == "none"], runs[runs["clip"] != "none"]
    if none.empty or clipped.empty:
        return missing(name, "needs runs with and without clipping", decisive)

    def counts(frame: pd.DataFrame) -> tuple[int, int]:
        return int(_diverged(frame).sum()), int(failed_to_train(frame).sum())

    (d1, f1), (d2, f2) = counts(none), counts(clipped)
    note = (f"unclipped: {d1} diverged, {f1} failed to train of {len(none)}; "
            f"clipped: {d2} diverged, {f2} failed to train of {len(clipped)}")
    if d1 + f1 == 0:
        note += "; every unclipped run trained, nothing to prevent"
    return share_difference_part(name, d1 + f1, len(none), d2 + f2, len(clipped), above(0.0), note=note,
                                 decisive=decisive)


def _claim8(t: Tables) -> list[Part]:
    parts = [_bad_outcome_part(f"{study}: share diverged or failed to train, unclipped - clipped", t.select(study))
             for study in ("clipping_mlp", "clipping_rnn") if t.has_study(study)]
    return parts or [missing("share diverged or failed to train, unclipped - clipped", "no clipping studies")]


# Decades of gradient decay through time are floored here: float32 carries 24 bits (7.2
# decades), so a dL/dh_1 more than 8 decades below dL/dh_T is lost in rounding when the
# weight gradient sums over t; whether it is 1e-9 or 1e-40 (or underflowed to 0) is noise
# that would only widen the interval.
DECAY_FLOOR_DECADES = 8.0


def _decay(t: Tables, run: str, step: Optional[int]) -> tuple[float, int]:
    """log10 of dLoss/dh at the first over the last kept time step (how much gradient reaches the
    start), floored at -DECAY_FLOOR_DECADES, and how many time steps the ``underflow`` probe
    flagged (left out)."""
    part = t.timesteps_of(run)
    if part.empty or step is None:
        return math.nan, 0
    part = part[part["step"] == step]
    quantity = part["quantity"].astype(str)
    flagged = set(part.loc[(quantity == "underflow") & (part["value"] > 0), "t"])
    norms = part[(quantity == "hidden_grad_norm") & ~part["t"].isin(flagged)]
    if norms.empty:
        return math.nan, len(flagged)
    series = norms.groupby("t")["value"].mean().sort_index()
    return max(log10_ratio(float(series.iloc[0]), float(series.iloc[-1])), -DECAY_FLOOR_DECADES), len(flagged)


def _last_timestep_step(t: Tables, run: str) -> Optional[int]:
    part = t.timesteps_of(run)
    return int(part["step"].max()) if not part.empty else None


def _claim9(t: Tables) -> list[Part]:
    runs = t.select("memory", data=["adding", "copy"])
    trained: list[pd.Series] = []
    at_init: dict[str, list[pd.Series]] = {"gru": [], "lstm": []}
    task: list[pd.Series] = []
    notes = []
    flagged = 0
    for data, cell in runs.groupby("data"):
        longest = cell[cell["length"] == cell["length"].max()]
        rnn = longest[longest["model"] == "rnn"]
        if rnn.empty:
            continue

        def decays(frame: pd.DataFrame, initial: bool) -> pd.Series:
            nonlocal flagged
            values = []
            for r, status in zip(frame["run"], frame["status"]):
                if not initial and status == "diverged":  # no trained network to measure
                    values.append(math.nan)
                    continue
                value, count = _decay(t, r, 0 if initial else _last_timestep_step(t, r))
                values.append(value)
                flagged += count
            return by_seed(frame, values)

        rnn_trained, rnn_init = decays(rnn, False), decays(rnn, True)
        for model in ("gru", "lstm"):
            gated = longest[longest["model"] == model]
            if not gated.empty:
                trained.append(paired(decays(gated, False), rnn_trained))
                at_init[model].append(paired(decays(gated, True), rnn_init))
        rnn_skill = cell[cell["model"] == "rnn"].assign(skill=lambda f: skill(f)).groupby("length")["skill"].mean()
        failing = rnn_skill[rnn_skill < FAIL_SKILL]
        if failing.empty:
            notes.append(f"{data}: the RNN is above chance at every length")
            continue
        at = cell[(cell["length"] == failing.index.max()) & cell["model"].isin(["gru", "lstm"])]
        if not at.empty:
            task.append(by_seed(at, skill(at)))
        notes.append(f"{data}: RNN at chance at length {failing.index.max():g}")
    absent = "needs rnn and gru/lstm on adding or copy"
    underflow = f"{flagged} underflowing time step(s) left out" if flagged else ""
    parts = [
        seed_part("decades of dL/dh_t kept from t=T to t=1 after training, gated - RNN", seed_mean(trained),
                  above(1.0, 0.0), note=_join(underflow, diverged_note(runs)), absent=absent),
    ]
    name = "skill of GRU/LSTM at the longest length where the RNN is at chance"
    if task:
        parts.append(seed_part(name, seed_mean(task), above(TRAIN_SKILL, FAIL_SKILL), note=_join(*notes)))
    elif notes:
        parts.append(fixed(name, INCONCLUSIVE, _join(*notes)))
    else:
        parts.append(missing(name, "needs rnn and gru/lstm runs"))
    for model, gaps in at_init.items():
        parts.append(seed_part(f"same at initialization, {model} - RNN", seed_mean(gaps), above(1.0, 0.0),
                               decisive=False, absent=absent))
    return parts


def _claim10(t: Tables) -> list[Part]:
    runs = t.select("residual")
    diffs, trained, notes = [], [], []
    for act, cell in runs.groupby("activation"):
        mlp, res = cell[cell["model"] == "mlp"], cell[cell["model"] == "resmlp"]
        if mlp.empty or res.empty:
            continue
        plain = mlp.assign(skill=skill(mlp)).groupby("depth")["skill"].mean()
        failing = plain[plain < FAIL_SKILL]
        depth = failing.index.max() if not failing.empty else min(plain.index.max(), res["depth"].max())
        m, r = mlp[mlp["depth"] == depth], res[res["depth"] == depth]
        diffs.append(paired(by_seed(r, outcome(r)), by_seed(m, outcome(m))))
        if failing.empty:
            notes.append(f"{act}: plain MLP above chance at every depth")
        else:
            trained.append(by_seed(r, skill(r)))
            notes.append(f"{act}: plain MLP at chance at depth {depth:g}")
        notes.append(diverged_note(pd.concat([m, r])))
    parts = [seed_part("test metric resmlp - mlp at the deepest depth where the MLP fails", seed_mean(diffs),
                       above(0.0), note=_join(*notes), absent="needs mlp and resmlp at a common depth")]
    name = "skill of resmlp where the MLP fails"
    if trained:
        parts.append(seed_part(name, seed_mean(trained), above(TRAIN_SKILL, FAIL_SKILL)))
    elif any(len(d) for d in diffs):
        parts.append(fixed(name, INCONCLUSIVE, "the plain MLP never fails at these depths"))
    return parts


LINEAR_TOLERANCE = 0.03


def _claim11(t: Tables) -> list[Part]:
    linear = _mlp(t, "linear_step", activation="linear")
    one, deep = linear[linear["depth"] == 1], deepest(linear)
    if one.empty or deep.empty or deep["depth"].iloc[0] == 1:
        return [missing("test accuracy deep linear - depth-1 linear", "needs linear nets of depth 1 and deeper")]
    depth = int(deep["depth"].iloc[0])
    relu = _mlp(t, "linear_step", activation="relu", depth=depth)
    return [
        seed_part(f"test accuracy linear depth {depth} - depth 1",
                  paired(by_seed(deep, outcome(deep)), by_seed(one, outcome(one))), within(LINEAR_TOLERANCE),
                  note=diverged_note(pd.concat([deep, one]))),
        seed_part(f"test accuracy relu - linear at depth {depth}",
                  paired(by_seed(relu, outcome(relu)), by_seed(deep, outcome(deep))), reported, decisive=False,
                  absent="no relu runs"),
    ]


def _claim12(t: Tables) -> list[Part]:
    step = _mlp(t, "linear_step", activation="step")
    if step.empty:
        return [missing("max hidden weight-gradient norm of step nets", "no step runs")]
    grads, updates, probed = [], [], {"grad": 0, "update": 0}
    for r in step["run"]:
        part = t.layers_of(r)
        g = part.value[part.hidden & (part.quantity == "weight_grad_norm")]
        u = part.value[part.hidden & (part.quantity == "update_ratio")]
        g, u = np.abs(g[np.isfinite(g)]), np.abs(u[np.isfinite(u)])
        probed["grad"] += len(g)
        probed["update"] += len(u)
        grads.append(float(g.max()) if len(g) else math.nan)
        updates.append(float(u.max()) if len(u) else math.nan)
    parts = [exact_zero_part("max hidden weight-gradient norm of step nets (all steps)", grads,
                             note=f"exact: all {probed['grad']} probed values must be 0"),
             exact_zero_part("max hidden update ratio of step nets", updates,
                             note=f"exact: all {probed['update']} probed values must be 0")]
    diffs, skills = [], []
    for depth, cell in step.groupby("depth"):
        relu = _mlp(t, "linear_step", activation="relu", depth=depth)
        if not relu.empty:
            diffs.append(paired(by_seed(relu, outcome(relu)), by_seed(cell, outcome(cell))))
        skills.append(by_seed(cell, skill(cell)))
    parts.append(seed_part("test accuracy relu - step (same depth)", seed_mean(diffs), above(0.0),
                           decisive=False, absent="no relu runs"))
    parts.append(seed_part("skill of step nets (head-only learning)", seed_mean(skills), reported, decisive=False))
    return parts


def _claim13(t: Tables) -> list[Part]:
    silu, relu = _mlp(t, "silu_relu", activation=["silu", "swish"]), _mlp(t, "silu_relu", activation="relu")
    if silu.empty or relu.empty:
        return [missing("test accuracy silu - relu", "needs silu and relu runs")]
    a, b = by_seed(silu, outcome(silu)), by_seed(relu, outcome(relu))
    note = diverged_note(pd.concat([silu, relu]))
    diffs = paired(a, b)
    if len(diffs):
        return [seed_part("test accuracy silu - relu (paired by seed)", diffs, above(0.0), note=note)]
    return [welch_part("test accuracy silu - relu (unpaired, Welch)", a, b, above(0.0), note=note)]


SELU_TOLERANCE = 0.15


def _deviation(t: Tables, run: str) -> float:
    mean, std = t.profile(run, "act_mean"), t.profile(run, "act_std")
    if len(mean) == 0 or len(mean) != len(std):
        return math.nan
    half = len(mean) // 2
    dev = np.maximum(np.abs(mean.to_numpy()), np.abs(std.to_numpy() - 1.0))[half:]
    return float(np.max(dev))


def _claim14(t: Tables) -> list[Part]:
    runs = _mlp(t, "selu")
    selu = runs[runs["activation"] == "selu"]
    if selu.empty:
        return [missing("max deviation of SELU activations from mean 0, std 1", "no selu runs")]
    parts = [seed_part("max(|act mean|, |act std - 1|) over the deeper half of the layers, step 0",
                       by_seed(selu, [_deviation(t, r) for r in selu["run"]]), below(SELU_TOLERANCE), log=True)]
    for act, cell in runs[runs["activation"] != "selu"].groupby("activation"):
        parts.append(seed_part(f"same for {act}", by_seed(cell, [_deviation(t, r) for r in cell["run"]]),
                               reported, log=True, decisive=False))
    return parts


THEORY_TOLERANCE = 0.10


def _claim15(t: Tables) -> list[Part]:
    runs = t.select("meanfield")
    name = "median |measured - sqrt(chi_1)| / sqrt(chi_1) over runs"
    if runs.empty:
        return [missing(name, "no meanfield runs")]
    arrays = {}
    flagged = 0
    for r in runs["run"]:
        arrays[r], count = t.fit_layers(r)
        flagged += count
    table = theory.theory_table_from_arrays(runs, arrays)
    if table.empty:
        return [missing(name, "no measurable factors")]
    note = f"{flagged} underflowing layer(s) left out of the fits" if flagged else ""
    errors = table["rel_error"].astype(float).to_numpy()
    parts = [median_part(name, errors, below(THEORY_TOLERANCE), note=note)]
    layerwise = (table["measured_factor"] - table["predicted_factor_layerwise"]).abs() / table["predicted_factor_layerwise"]
    parts.append(median_part("same, prediction from the measured layer variances",
                                layerwise.astype(float).to_numpy(), below(THEORY_TOLERANCE), decisive=False))
    return parts


def _rule(text: str) -> str:
    return f"{text} {CI_NOTE}"

_DEFINITIONS = [
    Claim(1, "Sigmoid gradients vanish with depth",
          "Sigmoid: the backpropagated gradient shrinks geometrically with depth (sigmoid' <= 1/4); "
          "the first layers barely change during training.",
          ("depth_activation_init",),
          "per-layer factor of the backprop norm at initialization (sigmoid, default init, deepest net)",
          _rule("Supported if the CI of the per-layer factor lies below 1 and the CI of the first over the "
                "last hidden layer's update ratio (float64, mean over probed steps; exact zeros counted) lies "
                "below 0.1; contradicted if the factor's CI lies above 1 or the update-ratio CI lies above 0.5.")),
    Claim(2, "tanh vanishes more slowly than sigmoid",
          "tanh also vanishes with depth, more slowly than sigmoid (zero-centred, tanh'(0) = 1).",
          ("depth_activation_init",),
          "per-layer factor tanh / sigmoid (default init, deepest common depth, paired by seed); tanh's factor",
          _rule("Supported if the interval of the factor ratio tanh / sigmoid lies above 1 and the interval of "
                "tanh's factor lies below 1; contradicted if the ratio's interval lies below 1 or tanh's factor "
                "interval lies above 1.")),
    Claim(3, "ReLU + He keeps gradients in scale and trains",
          "ReLU with He initialization keeps the gradient norm roughly constant across depth and trains "
          "depths at which sigmoid fails.",
          ("depth_activation_init",),
          "log10 of max/min backprop norm over the hidden layers at initialization (relu, he_normal, deepest net)",
          _rule(f"Supported if the CI of log10(max/min) lies below 1 (within 10x) and, at the deepest depth "
                f"where sigmoid/default is at chance (mean skill < {FAIL_SKILL}), relu/he's skill CI lies above "
                f"{TRAIN_SKILL}; contradicted if log10(max/min) CI lies above 1 or relu/he's skill CI lies "
                f"below {FAIL_SKILL}. Inconclusive if sigmoid is above chance at every depth.")),
    Claim(4, "Weight scale sets vanishing vs exploding",
          "Initialization matters: He for ReLU, Xavier for tanh/sigmoid; std 1.0 explodes, std 0.01 "
          "vanishes; the per-layer gradient factor follows the weight variance.",
          ("init_scale", "depth_activation_init"),
          "per-layer factor at normal std 1.0 (relu first; per activation in the detail)",
          _rule("Per activation of init_scale: supported if the factor's CI lies above 1 at std 1.0, below 1 "
                "at std 0.01, and the CI of the factor with the variance-preserving init (He for ReLU-like, "
                "Xavier for tanh/sigmoid, deepest net of depth_activation_init) lies between the two means; "
                "contradicted if any of these CIs lies on the wrong side of 1 or the preserving factor's mean "
                "lies outside the two. The quantitative follow-up is claim 15.")),
    Claim(5, "Dying ReLU",
          "Dying ReLU: units that output zero for every input; their share grows with the learning rate and "
          "a negative bias; leaky ReLU, PReLU and ELU avoid it. PReLU's slope is learned.",
          ("dying_relu",),
          "share of hidden units that died during training (died_frac: dead at the last probe, alive at "
          "step 0) and that are dead at initialization (dead_frac at step 0); a unit is dead when "
          f"{DEAD_SHARE_NOTE}",
          _rule(f"Dying during training and dead at initialization are separate parts (a bias of -1 kills "
                f"units at step 0 whatever the lr). Supported if the interval of ReLU's died_frac, largest "
                f"- smallest lr (paired by bias and seed), lies above 0, the interval of ReLU's step-0 "
                f"dead_frac, most negative bias - bias 0 (paired by lr and seed), lies above 0, and for each "
                f"of leaky_relu, prelu and elu the interval of died_frac lies below {ALTERNATIVE_DEAD_MAX:g}; "
                f"contradicted if a difference's interval lies below 0 or an alternative's died_frac interval "
                f"lies above {ALTERNATIVE_DEAD_MAX:g}. The alternatives' dead_frac at step 0 and the PReLU "
                f"slope change are reported, not voted.")),
    Claim(6, "Symptoms of vanishing and exploding",
          "Symptoms: vanishing shows as near-zero change of the early layers and a flat loss; exploding "
          "shows as fast-growing weights, oscillating loss, then NaN.",
          ("init_scale", "clipping_mlp"),
          "per activation: first-layer update ratio and relative loss decrease at std 0.01; weight-norm "
          "growth and share of diverged runs at std 1.0 and in unclipped clipping_mlp",
          _rule(f"Every part is per activation (and per study for exploding): cells are never pooled. "
                f"Vanishing (init_scale, std 0.01): the interval of the first-layer update ratio (float64, mean "
                f"over probed steps; exact zeros counted apart) lies below {UPDATE_VANISHED:g} and that of the "
                f"relative loss decrease (first - final) / first below 0.05 (contradicted above "
                f"{UPDATE_MOVES:g} resp. 0.25). Exploding (init_scale std 1.0; clipping_mlp unclipped): the "
                f"interval of the weight-norm growth (last probed step / step 0; runs never probed after step "
                f"0 are counted, not measured) lies above 1.5 (contradicted below 1) and the Wilson interval of "
                f"the share of diverged runs lies above 0.5 (contradicted below 0.5). Oscillation of the loss "
                f"needs the step tables and is not tested.")),
    Claim(7, "Batch norm lessens vanishing, not in very deep sigmoid nets",
          "Batch normalization lessens vanishing in sigmoid/tanh networks but does not remove it in very "
          "deep sigmoid networks.",
          ("normalization",),
          "per cell (activation, depth): change of log10(first / last hidden backprop norm) at "
          "initialization, batch norm minus none; deepest sigmoid + batch norm ratio",
          _rule("Each cell (activation in {sigmoid, tanh}, depth) is its own part, never pooled: supported if "
                "the interval of the change (paired by seed) lies above 0 in every cell and, for the deepest "
                "sigmoid net with batch norm, the interval of log10(first / last backprop norm) lies below -1; "
                "contradicted if a cell's change lies below 0 or the deep sigmoid ratio's interval lies above "
                "-0.5.")),
    Claim(8, "Clipping prevents divergence",
          "Gradient clipping prevents divergence where gradients explode (RNNs, large inits).",
          ("clipping_mlp", "clipping_rnn"),
          "per study: share of runs that diverged or failed to train, without minus with clipping",
          "A run that did not diverge but failed to train (final training loss above its initial loss, or "
          "test skill at chance) counts as failed; both counts are stated apart. Per study (clipping_mlp, "
          "clipping_rnn; never pooled): supported if Newcombe's 95% interval of the difference of the shares "
          "lies above 0 in every study; contradicted if it lies below 0 in one; inconclusive otherwise, in "
          "particular when every unclipped run trained."),
    Claim(9, "Gated RNNs carry gradients through time",
          "GRU and LSTM carry gradients through time far better than a vanilla RNN: the norm of dLoss/dh_t "
          "decays much more slowly with the distance to the loss, and long-range tasks (adding, copy) are "
          "solved at lengths where the RNN is at chance.",
          ("memory",),
          "log10(||dL/dh_1|| / ||dL/dh_T||) of GRU/LSTM minus the RNN's after training, longest length",
          _rule(f"Supported if the CI of the gated-minus-RNN difference at the last probed step (decay floored "
                f"at {DECAY_FLOOR_DECADES:g} decades, float32's resolution) lies above 1 decade, and at the "
                f"longest length where the RNN is at chance (mean skill < {FAIL_SKILL}) the CI of GRU/LSTM "
                f"skill lies above {TRAIN_SKILL}; contradicted if the difference CI lies below 0 or the gated "
                f"skill CI lies below {FAIL_SKILL}. Inconclusive if the RNN is above chance at every length. "
                f"The same difference at initialization is reported per model, not voted: it depends on the "
                f"gate biases (an LSTM with forget bias 1 starts with its gates half open; a GRU's update "
                f"gate starts at 0.5, which keeps no more than a tanh RNN).")),
    Claim(10, "Residual connections train deeper",
          "Residual connections train depths at which the plain network fails.",
          ("residual",),
          "test metric of resmlp minus mlp at the deepest depth where the plain MLP is at chance",
          _rule(f"Per activation, take the deepest depth where the plain MLP's mean skill is below "
                f"{FAIL_SKILL}. Supported if the CI of resmlp - mlp (paired by seed) lies above 0 and the CI "
                f"of resmlp's skill there lies above {TRAIN_SKILL}; contradicted if the difference's CI lies "
                f"below 0 or resmlp's skill CI lies below {FAIL_SKILL}; inconclusive if the plain MLP never fails.")),
    Claim(11, "Deep linear = linear",
          "A network with linear activations is a linear model, whatever its depth: its accuracy equals "
          "that of a one-layer model.",
          ("linear_step",),
          "test accuracy of the deepest linear net minus the depth-1 linear net (paired by seed)",
          _rule(f"Equivalence: supported if the CI lies inside (-{LINEAR_TOLERANCE}, {LINEAR_TOLERANCE}); "
                f"contradicted if it lies entirely outside; inconclusive otherwise.")),
    Claim(12, "The binary step cannot be trained by backprop",
          "The binary step has zero derivative almost everywhere: backpropagation cannot train it.",
          ("linear_step",),
          "largest hidden-layer weight-gradient norm of step nets over all probed steps",
          "Exact: supported if every probed hidden weight-gradient norm and every hidden update ratio of "
          "the step nets is exactly 0; contradicted if any is not. The accuracy gap to ReLU and the step "
          "nets' skill (what the head alone learns) are reported, not voted."),
    Claim(13, "SiLU slightly better than ReLU",
          "Swish/SiLU is slightly better than ReLU (a claim from ImageNet, +0.6 to 0.9 points): measured "
          "here with a confidence interval.",
          ("silu_relu",),
          "test accuracy silu minus relu (paired by seed)",
          _rule("Supported if the CI lies above 0; contradicted if it lies below 0; inconclusive otherwise.")),
    Claim(14, "SELU self-normalizes",
          "SELU with lecun init keeps activations near mean 0, variance 1 through depth.",
          ("selu",),
          "largest deviation max(|mean|, |std - 1|) of SELU activations over the deeper half of the layers, at init",
          _rule(f"Supported if the CI lies below {SELU_TOLERANCE}; contradicted if it lies above "
                f"{SELU_TOLERANCE}. ReLU/tanh with the same weights are reported, not voted.")),
    Claim(15, "Mean-field theory predicts the gradient factor",
          "Mean-field theory predicts the per-layer gradient factor at initialization (sqrt of chi_1 = "
          "sigma_w^2 E[phi'(z)^2] at the fixed point).",
          ("meanfield",),
          "median relative error of the measured per-layer factor against sqrt(chi_1)",
          f"Supported if the 95% distribution-free interval of the median relative error (order statistics "
          f"over runs; none below 6 runs) lies below {THEORY_TOLERANCE}; contradicted if it "
          f"lies above {THEORY_TOLERANCE}. The prediction from the measured layer variances is reported, not voted."),
]

_COMPUTE = {1: _claim1, 2: _claim2, 3: _claim3, 4: _claim4, 5: _claim5, 6: _claim6, 7: _claim7, 8: _claim8,
            9: _claim9, 10: _claim10, 11: _claim11, 12: _claim12, 13: _claim13, 14: _claim14, 15: _claim15}

# The registry: claim id -> Claim, in the paper's order.
CLAIMS: dict[int, Claim] = {c.id: replace(c, compute=_COMPUTE[c.id]) for c in _DEFINITIONS}


def _parts_summary(parts: tuple[Part, ...]) -> str:
    """Every part in one line each: '[decisive] name: value [low, high] (method), n -> verdict, stability'."""
    return "\n".join(("" if p.decisive else "(reported) ") + p.describe() for p in parts)


def evaluate(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame,
             draws: int = STABILITY_DRAWS) -> dict[int, ClaimResult]:
    """Every claim of ``CLAIMS`` evaluated once: claim id -> ``ClaimResult``."""
    tables = Tables(runs, layers, timesteps)
    return {claim.id: claim.evaluate(runs, layers, timesteps, tables, draws) for claim in CLAIMS.values()}


def verdict_frame(results: dict[int, ClaimResult]) -> pd.DataFrame:
    """One row per claim, columns ``RESULT_COLUMNS``: the deciding part's value, interval and n,
    the reported and would-be verdicts, the stability and every part."""
    rows = []
    for claim_id, result in results.items():
        claim, part = CLAIMS[claim_id], result.deciding
        rows.append({"claim": claim.id, "title": claim.title, "statement": claim.statement,
                     "study": ", ".join(claim.studies), "metric": claim.metric,
                     "parts": _parts_summary(result.parts), "deciding": part.name if part else "",
                     "value": result.value, "ci_low": result.ci_low, "ci_high": result.ci_high,
                     "interval": part.interval if part else "", "n": int(result.n),
                     "verdict": result.verdict, "would_be": result.would_be, "stability": result.stability,
                     "rule": claim.rule, "detail": result.detail})
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def parts_frame(results: dict[int, ClaimResult]) -> pd.DataFrame:
    """One row per part of every claim, columns ``PART_COLUMNS``."""
    rows = []
    for claim_id, result in results.items():
        for part in result.parts:
            rows.append({"claim": claim_id, "part": part.name, "value": part.value, "ci_low": part.ci_low,
                         "ci_high": part.ci_high, "interval": part.interval, "n": part.n,
                         "verdict": part.verdict, "stability": part.stability, "decisive": part.decisive,
                         "deciding": part is result.deciding, "note": part.note})
    return pd.DataFrame(rows, columns=list(PART_COLUMNS))


def evaluate_claims(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame,
                    draws: int = STABILITY_DRAWS) -> pd.DataFrame:
    """Every claim of ``CLAIMS``: one row each, columns ``RESULT_COLUMNS`` (see ``verdict_frame``)."""
    return verdict_frame(evaluate(runs, layers, timesteps, draws))


def claim_parts(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame,
                draws: int = STABILITY_DRAWS) -> pd.DataFrame:
    """Every part of every claim: one row each, columns ``PART_COLUMNS`` (see ``parts_frame``)."""
    return parts_frame(evaluate(runs, layers, timesteps, draws))

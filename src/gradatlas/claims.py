"""The fifteen claims of the paper, each with a metric, a stated verdict rule and a CI over seeds.

Every claim reads the summary tables (``runs``, ``layers``, ``timesteps``; see
``gradatlas.aggregate``) and returns *parts*: one measured quantity each, with its value, a 95%
confidence interval, the number of observations and a part verdict. The first part is the
claim's headline metric (the value the claims table shows); the claim's verdict combines the
*decisive* parts (informational parts are reported, not voted):

- ``no data at this scale`` when none of the claim's studies is in the tables, or no decisive
  part found the cells it needs (a missing cell is never guessed or substituted);
- ``contradicted`` when any decisive part is contradicted;
- ``supported`` when every decisive part is supported (and none lacks data);
- ``inconclusive`` otherwise.

Statistics. The seed is the replicate: a part that pools several cells (activations, depths,
learning rates) first averages them per seed, then takes a two-sided 95% Student-t interval
over the seeds. With one observation the interval is undefined (NaN) and every rule that asks for a
CI bound then fails, so **a single seed can never give ``supported`` or ``contradicted``** for
such a part: it is ``inconclusive`` (smoke scale, one seed, reads inconclusive by design). Shares
of runs (divergence) use Wilson score intervals and their differences Newcombe's hybrid score
interval, which stay defined for 0 of n. The median relative error of claim 15 uses a
percentile bootstrap over runs (``BOOTSTRAP_RESAMPLES`` resamples, fixed RNG seed
``BOOTSTRAP_SEED``). Exact statements (a gradient that is identically zero) need no interval.

Conventions. "Per-layer factor" is ``theory.measured_factor`` at step 0: exp(-slope) of a fit of
log backprop_norm over the hidden layers, comparable to sqrt(chi_1). "Skill" puts task metrics
on one scale, 0 = chance and 1 = perfect: (accuracy - chance) / (1 - chance), or
(chance - mse) / chance for the adding problem. A diverged run counts as chance level (skill 0);
failed runs are left out. Log ratios of norms that reach exactly 0 are capped at
``CAP_DECADES`` decades so that intervals stay finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Optional

import numpy as np
import pandas as pd
from scipy import stats

from gradatlas import theory

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
NO_DATA = "no data at this scale"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NO_DATA)

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
# A cell is "at chance" when its mean skill is below FAIL_SKILL; a cell "learns" when the CI
# lower bound of its skill is above TRAIN_SKILL.
FAIL_SKILL = 0.05
TRAIN_SKILL = 0.2
# log10 ratios of norms that hit exactly 0 (or overflow) are capped at this many decades.
CAP_DECADES = 30.0

RESULT_COLUMNS = ("claim", "title", "statement", "study", "metric", "value", "ci_low", "ci_high",
                  "n", "verdict", "rule", "detail")
PART_COLUMNS = ("claim", "part", "value", "ci_low", "ci_high", "n", "verdict", "decisive", "note")
CI_NOTE = "CIs: 95% Student-t over seeds (undefined for one seed, which leaves the part inconclusive)."


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------

def mean_ci(values: Iterable[float], confidence: float = CONFIDENCE) -> tuple[float, float, float, int]:
    """Mean and two-sided Student-t CI of the finite ``values``: (mean, low, high, n).

    n = 0 gives NaNs; n = 1 gives the value with a NaN interval (undefined).
    """
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, math.nan, 1
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def bootstrap_ci(values: Iterable[float], statistic: Callable[[np.ndarray], float] = np.median,
                 confidence: float = CONFIDENCE, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float, int]:
    """``statistic`` of the finite ``values`` with a percentile-bootstrap CI (fixed RNG seed)."""
    x = np.asarray(list(values), dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    point = float(statistic(x))
    if n == 1:
        return point, math.nan, math.nan, 1
    rng = np.random.default_rng(seed)
    samples = x[rng.integers(0, n, size=(resamples, n))]
    try:  # numpy reductions take an axis; other callables get one resample at a time
        boot = np.asarray(statistic(samples, axis=1), dtype=np.float64)
    except TypeError:
        boot = np.apply_along_axis(statistic, 1, samples)
    alpha = (1 - confidence) / 2
    return point, float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha)), n


def wilson_ci(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Share k/n with its Wilson score interval: (share, low, high); NaNs for n = 0."""
    if n == 0:
        return math.nan, math.nan, math.nan
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def newcombe_ci(k1: int, n1: int, k2: int, n2: int, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Difference of shares k1/n1 - k2/n2 with Newcombe's hybrid score interval."""
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan, math.nan
    p1, l1, u1 = wilson_ci(k1, n1, confidence)
    p2, l2, u2 = wilson_ci(k2, n2, confidence)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def verdict_above(low: float, high: float, support: float, contradict: Optional[float] = None) -> str:
    """The claim says 'the quantity is large': supported if low > support, contradicted if
    high < contradict (default: support); NaN bounds give inconclusive."""
    contradict = support if contradict is None else contradict
    if low > support:
        return SUPPORTED
    if high < contradict:
        return CONTRADICTED
    return INCONCLUSIVE


def verdict_below(low: float, high: float, support: float, contradict: Optional[float] = None) -> str:
    """The claim says 'the quantity is small': supported if high < support, contradicted if
    low > contradict (default: support); NaN bounds give inconclusive."""
    contradict = support if contradict is None else contradict
    if high < support:
        return SUPPORTED
    if low > contradict:
        return CONTRADICTED
    return INCONCLUSIVE


def verdict_within(low: float, high: float, tolerance: float) -> str:
    """Equivalence: supported if the CI lies inside (-tol, tol), contradicted if entirely outside."""
    if -tolerance < low and high < tolerance:
        return SUPPORTED
    if low > tolerance or high < -tolerance:
        return CONTRADICTED
    return INCONCLUSIVE


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
# Parts and claims
# --------------------------------------------------------------------------------------------

@dataclass
class Part:
    """One measured quantity of a claim with its interval and part verdict."""

    name: str
    value: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    n: int = 0
    verdict: str = NO_DATA
    note: str = ""
    decisive: bool = True

    def describe(self) -> str:
        """One line: name, value [CI], n, verdict (and note)."""
        text = f"{self.name}: {_fmt(self.value)} [{_fmt(self.ci_low)}, {_fmt(self.ci_high)}], n={self.n}"
        text += f" -> {self.verdict}" + ("" if self.decisive else " (informational)")
        return text + (f" ({self.note})" if self.note else "")


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def missing(name: str, note: str, decisive: bool = True) -> Part:
    """A part whose cells are absent from the tables."""
    return Part(name, note=note, decisive=decisive)


def ci_part(name: str, values: Iterable[float], judge: Callable[[float, float], str],
            note: str = "", decisive: bool = True, absent: str = "cells absent") -> Part:
    """A part from observations over seeds: mean, t-CI and ``judge(low, high)``."""
    mean, low, high, n = mean_ci(values)
    if n == 0:
        return missing(name, absent, decisive)
    return Part(name, mean, low, high, n, judge(low, high), note, decisive)


@dataclass(frozen=True)
class ClaimResult:
    """The evaluated claim: headline value with CI, n, verdict and the parts in words."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    verdict: str
    detail: str
    parts: tuple[Part, ...] = ()


def combine(parts: list[Part]) -> str:
    """The claim verdict from its parts (rules in the module docstring)."""
    decisive = [p for p in parts if p.decisive]
    with_data = [p for p in decisive if p.verdict != NO_DATA]
    if not with_data:
        return NO_DATA
    if any(p.verdict == CONTRADICTED for p in with_data):
        return CONTRADICTED
    if len(with_data) == len(decisive) and all(p.verdict == SUPPORTED for p in with_data):
        return SUPPORTED
    return INCONCLUSIVE


@dataclass(frozen=True)
class Claim:
    """One claim: what it says, the studies it reads, its metric, rule and computation."""

    id: int
    title: str
    statement: str
    studies: tuple[str, ...]
    metric: str
    rule: str
    compute: Optional[Callable[["Tables"], list[Part]]] = field(default=None, repr=False, compare=False)

    def evaluate(self, runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame,
                 tables: Optional["Tables"] = None) -> ClaimResult:
        """Compute the parts and the verdict; ``tables`` shares caches between claims."""
        tables = tables or Tables(runs, layers, timesteps)
        present = [s for s in self.studies if tables.has_study(s)]
        if not present:
            return ClaimResult(math.nan, math.nan, math.nan, 0, NO_DATA,
                               f"studies not in the tables: {', '.join(self.studies)}")
        if self.compute is None:
            raise ValueError(f"claim {self.id} has no compute function")
        parts = self.compute(tables)
        if not parts:
            return ClaimResult(math.nan, math.nan, math.nan, 0, NO_DATA, "no cells for this claim")
        head = parts[0]
        verdict = combine(parts)
        return ClaimResult(head.value, head.ci_low, head.ci_high, head.n, verdict,
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
        self.layers = layers
        self.timesteps = timesteps
        self._layers_by_run: Optional[dict[str, theory.LayerArrays]] = None
        self._timesteps_by_run: Optional[dict[str, pd.DataFrame]] = None
        self._factor: dict[str, float] = {}

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

    def factor(self, run: str) -> float:
        """The measured per-layer factor of a run at step 0 (cached)."""
        if run not in self._factor:
            part = self.layers_of(run)
            self._factor[run] = theory.measured_factor(part) if len(part) else math.nan
        return self._factor[run]

    def profile(self, run: str, quantity: str, step: Optional[int] = 0) -> pd.Series:
        """``quantity`` over the hidden layers of a run at ``step`` (None: mean over steps)."""
        return self.layers_of(run).profile(quantity, step)

    def last_step(self, run: str) -> Optional[int]:
        """The last probed step of a run, or None."""
        return self.layers_of(run).last_step()


_EMPTY_LAYERS = theory.LayerArrays.from_frame(pd.DataFrame(columns=["step", "layer", "name", "quantity", "value"]))
_EMPTY_TIMESTEPS = pd.DataFrame(columns=["run", "step", "t", "quantity", "value"])


def skill(runs: pd.DataFrame) -> pd.Series:
    """Task skill per run: 0 = chance, 1 = perfect; diverged runs count as 0."""
    metric = runs["metric"].astype(str)
    chance = runs["chance"].astype(float)
    value = runs["test_metric"].astype(float)
    acc = (value - chance) / (1.0 - chance)
    mse = (chance - value) / chance
    out = pd.Series(np.where(metric == "mse", mse, acc), index=runs.index, dtype=float)
    if "status" in runs:
        out[runs["status"].astype(str) == "diverged"] = 0.0
    return out


def outcome(runs: pd.DataFrame) -> pd.Series:
    """Test metric per run, a diverged run counted at chance level."""
    value = runs["test_metric"].astype(float).copy()
    if "status" in runs:
        diverged = runs["status"].astype(str) == "diverged"
        value[diverged] = runs.loc[diverged, "chance"].astype(float)
    return value


def by_seed(frame: pd.DataFrame, values: pd.Series | Iterable[float]) -> pd.Series:
    """``values`` (aligned with ``frame``) indexed by the runs' seeds, averaged per seed."""
    series = pd.Series(list(values), index=frame["seed"].to_numpy(), dtype=float)
    return series.groupby(level=0).mean()


def paired(a: pd.Series, b: pd.Series) -> pd.Series:
    """a - b over the seeds (index) both have, indexed by seed."""
    common = a.index.intersection(b.index)
    return (a[common] - b[common]).astype(float)


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


# --------------------------------------------------------------------------------------------
# The claims
# --------------------------------------------------------------------------------------------

def _claim1(t: Tables) -> list[Part]:
    runs = deepest(_mlp(t, "depth_activation_init", activation="sigmoid", init="default", norm="none"))
    if runs.empty:
        return [missing("per-layer factor, sigmoid/default, deepest depth", "no sigmoid/default runs")]
    depth = int(runs["depth"].iloc[0])
    factors = by_seed(runs, [t.factor(r) for r in runs["run"]])
    updates, endpoints, fits = [], [], []
    for r in runs["run"]:
        ur = t.profile(r, "update_ratio", step=None)
        updates.append(first_last_ratio(ur))
        endpoints.append(first_last_ratio(t.profile(r, "backprop_norm")))
        fits.append(theory.factor_fit(t.layers_of(r))["r2"] if len(t.layers_of(r)) else math.nan)
    return [
        ci_part(f"per-layer factor (depth {depth})", factors, lambda lo, hi: verdict_below(lo, hi, 1.0)),
        ci_part("log10 update ratio first/last hidden layer", by_seed(runs, updates),
                lambda lo, hi: verdict_below(lo, hi, -1.0, math.log10(0.5))),
        ci_part("log10 backprop norm first/last hidden layer", by_seed(runs, endpoints),
                lambda lo, hi: INCONCLUSIVE, decisive=False),
        ci_part("R^2 of the log-linear fit", by_seed(runs, fits), lambda lo, hi: INCONCLUSIVE, decisive=False),
    ]


def _claim2(t: Tables) -> list[Part]:
    base = _mlp(t, "depth_activation_init", init="default", norm="none")
    tanh, sigm = base[base["activation"] == "tanh"], base[base["activation"] == "sigmoid"]
    depths = set(tanh["depth"]) & set(sigm["depth"])
    if not depths:
        return [missing("per-layer factor tanh - sigmoid", "needs tanh and sigmoid with default init at a common depth")]
    depth = max(depths)
    tanh, sigm = tanh[tanh["depth"] == depth], sigm[sigm["depth"] == depth]
    f_tanh = by_seed(tanh, [t.factor(r) for r in tanh["run"]])
    f_sigm = by_seed(sigm, [t.factor(r) for r in sigm["run"]])
    return [
        ci_part(f"per-layer factor tanh - sigmoid (depth {int(depth)})", paired(f_tanh, f_sigm),
                lambda lo, hi: verdict_above(lo, hi, 0.0)),
        ci_part("per-layer factor tanh", f_tanh, lambda lo, hi: verdict_below(lo, hi, 1.0)),
        ci_part("per-layer factor sigmoid", f_sigm, lambda lo, hi: INCONCLUSIVE, decisive=False),
    ]


def _claim3(t: Tables) -> list[Part]:
    relu = _mlp(t, "depth_activation_init", activation="relu", init="he_normal", norm="none")
    if relu.empty:
        return [missing("log10 max/min backprop norm, relu/he", "no relu/he_normal runs")]
    top = deepest(relu)
    spreads = []
    for r in top["run"]:
        norms = t.profile(r, "backprop_norm").to_numpy()
        norms = norms[np.isfinite(norms)]
        spreads.append(log10_ratio(float(norms.max()), float(norms.min())) if len(norms) >= 2 else math.nan)
    parts = [ci_part(f"log10 max/min backprop norm over hidden layers (depth {int(top['depth'].iloc[0])})",
                     by_seed(top, spreads), lambda lo, hi: verdict_below(lo, hi, 1.0))]
    sigm = _mlp(t, "depth_activation_init", activation="sigmoid", init="default", norm="none")
    if sigm.empty:
        parts.append(missing("skill of relu/he where sigmoid/default is at chance", "no sigmoid/default runs"))
        return parts
    sigm_skill = sigm.assign(skill=skill(sigm)).groupby("depth")["skill"].mean()
    failing = sigm_skill[sigm_skill < FAIL_SKILL]
    if failing.empty:
        parts.append(Part("skill of relu/he where sigmoid/default is at chance", verdict=INCONCLUSIVE,
                          note=f"sigmoid/default is above chance at every depth ({', '.join(f'{d:g}' for d in sigm_skill.index)})"))
        return parts
    depth = failing.index.max()
    at = relu[relu["depth"] == depth]
    parts.append(ci_part(f"skill of relu/he at depth {depth:g} (sigmoid/default skill {failing[depth]:.3g})",
                         by_seed(at, skill(at)), lambda lo, hi: verdict_above(lo, hi, TRAIN_SKILL, FAIL_SKILL),
                         absent=f"no relu/he run at depth {depth:g}"))
    return parts


PRESERVING_INIT = {"relu": "he_normal", "leaky_relu": "he_normal", "prelu": "he_normal", "elu": "he_normal",
                   "silu": "he_normal", "gelu": "he_normal", "tanh": "xavier_normal", "sigmoid": "xavier_normal",
                   "selu": "lecun_normal", "linear": "xavier_normal"}


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
        f_big = by_seed(big, [t.factor(r) for r in big["run"]]) if not big.empty else pd.Series(dtype=float)
        f_small = by_seed(small, [t.factor(r) for r in small["run"]]) if not small.empty else pd.Series(dtype=float)
        parts.append(ci_part(f"{act}: per-layer factor at std 1.0", f_big,
                             lambda lo, hi: verdict_above(lo, hi, 1.0), absent="no run with std >= 1.0"))
        parts.append(ci_part(f"{act}: per-layer factor at std 0.01", f_small,
                             lambda lo, hi: verdict_below(lo, hi, 1.0), absent="no run with std <= 0.01"))
        init = PRESERVING_INIT.get(act, "he_normal")
        ref = deepest(_mlp(t, "depth_activation_init", activation=act, init=init, norm="none"))
        f_ref = by_seed(ref, [t.factor(r) for r in ref["run"]]) if not ref.empty else pd.Series(dtype=float)
        lo_bound = float(f_small.mean()) if len(f_small) else math.nan
        hi_bound = float(f_big.mean()) if len(f_big) else math.nan

        def between(lo: float, hi: float, a: float = lo_bound, b: float = hi_bound, ref=f_ref) -> str:
            if lo > a and hi < b:
                return SUPPORTED
            mean = float(ref.mean())
            if mean <= a or mean >= b:
                return CONTRADICTED
            return INCONCLUSIVE

        if math.isnan(lo_bound) or math.isnan(hi_bound):
            parts.append(missing(f"{act}: per-layer factor with {init}", "needs both std 0.01 and std 1.0"))
        else:
            parts.append(ci_part(f"{act}: per-layer factor with {init} (depth_activation_init)", f_ref, between,
                                 absent=f"no {act}/{init} runs in depth_activation_init"))
    return parts


def _dead(t: Tables, run: str) -> float:
    step = t.last_step(run)
    if step is None:
        return math.nan
    profile = t.profile(run, "dead_frac", step)
    return float(profile.mean()) if len(profile) else math.nan


def _claim5(t: Tables) -> list[Part]:
    runs = _mlp(t, "dying_relu")
    relu = runs[runs["activation"] == "relu"].copy()
    relu["dead"] = [_dead(t, r) for r in relu["run"]]
    relu["bias0"] = relu["bias"].fillna(0.0)
    parts: list[Part] = []
    # Negative bias: most negative bias against 0, at each learning rate and seed.
    diffs = []
    for _, cell in relu.groupby("lr"):
        neg, zero = cell[cell["bias0"] == cell["bias0"].min()], cell[cell["bias0"] == 0.0]
        if cell["bias0"].min() < 0 and not zero.empty:
            diffs.append(paired(by_seed(neg, neg["dead"]), by_seed(zero, zero["dead"])))
    parts.append(ci_part("relu dead fraction, most negative bias - bias 0", seed_mean(diffs),
                         lambda lo, hi: verdict_above(lo, hi, 0.0), absent="needs relu runs with bias 0 and < 0"))
    diffs = []
    for _, cell in relu.groupby("bias0"):
        if cell["lr"].nunique() >= 2:
            high, low = cell[cell["lr"] == cell["lr"].max()], cell[cell["lr"] == cell["lr"].min()]
            diffs.append(paired(by_seed(high, high["dead"]), by_seed(low, low["dead"])))
    parts.append(ci_part("relu dead fraction, largest - smallest lr", seed_mean(diffs),
                         lambda lo, hi: verdict_above(lo, hi, 0.0), absent="needs at least two learning rates"))
    alt = runs[runs["activation"].isin(["leaky_relu", "prelu", "elu"])]
    dead_alt = [_dead(t, r) for r in alt["run"]]
    finite = [d for d in dead_alt if np.isfinite(d)]
    peak = max(finite) if finite else math.nan

    def rare(lo: float, hi: float) -> str:
        if peak <= 0.01 and hi <= 0.01:  # hi is NaN for one seed: no support from one seed
            return SUPPORTED
        return CONTRADICTED if lo > 0.01 else INCONCLUSIVE

    parts.append(ci_part("leaky_relu/prelu/elu dead fraction", by_seed(alt, dead_alt) if len(alt) else [], rare,
                         note=f"max over runs {_fmt(peak)}", absent="no leaky_relu/prelu/elu runs"))
    prelu = alt[alt["activation"] == "prelu"]
    changes = []
    for r in prelu["run"]:
        step = t.last_step(r)
        first, last = t.profile(r, "prelu_slope", 0), t.profile(r, "prelu_slope", step)
        changes.append(float((last - first).abs().mean()) if len(first) and len(last) and step else math.nan)
    parts.append(ci_part("PReLU mean |slope change|", by_seed(prelu, changes) if len(prelu) else [], lambda lo, hi: verdict_above(lo, hi, 0.0),
                         decisive=False, absent="no PReLU runs"))
    return parts


def _claim6(t: Tables) -> list[Part]:
    scale = _mlp(t, "init_scale", init="normal", norm="none")
    small = scale[scale["init_std"] <= 0.01]
    small = small[small["init_std"] == small["init_std"].max()] if not small.empty else small
    parts: list[Part] = []
    first_updates = []
    for r in small["run"]:
        ur = t.profile(r, "update_ratio", step=None)
        first_updates.append(log10_ratio(float(ur.iloc[0]), 1.0) if len(ur) else math.nan)
    parts.append(ci_part("vanishing (std 0.01): log10 first-layer update ratio",
                         by_seed(small, first_updates) if len(small) else [],
                         lambda lo, hi: verdict_below(lo, hi, -4.0, -2.0), absent="no init_scale run with std <= 0.01"))
    drop = ((small["first_loss"] - small["final_train_loss"]) / small["first_loss"]).tolist() if not small.empty else []
    parts.append(ci_part("vanishing (std 0.01): relative loss decrease", by_seed(small, drop) if len(small) else [],
                         lambda lo, hi: verdict_below(lo, hi, 0.05, 0.25), absent="no init_scale run with std <= 0.01"))
    big = scale[scale["init_std"] >= 1.0]
    clip = _mlp(t, "clipping_mlp", clip="none")
    exploding = pd.concat([big, clip])
    growth = []
    for r in exploding["run"]:
        step = t.last_step(r)
        before = t.profile(r, "weight_norm", 0)
        after = t.profile(r, "weight_norm", step) if step else pd.Series(dtype=float)
        if before.empty or after.empty:
            growth.append(math.nan)
            continue
        # Non-finite weights at the last probe mean they overflowed: infinite growth (capped).
        w1 = float(after.sum())
        growth.append(log10_ratio(w1 if np.isfinite(w1) else np.inf, float(before.sum())))
    parts.append(ci_part("exploding (std 1.0, no clipping): log10 weight-norm growth",
                         by_seed(exploding, growth) if len(exploding) else [],
                         lambda lo, hi: verdict_above(lo, hi, math.log10(1.5), 0.0),
                         absent="no init_scale std 1.0 or unclipped clipping_mlp runs"))
    if exploding.empty:
        parts.append(missing("exploding: share of runs that diverge", "no exploding runs"))
    else:
        k, n = int((exploding["status"] == "diverged").sum()), len(exploding)
        share, lo, hi = wilson_ci(k, n)
        parts.append(Part("exploding: share of runs that diverge (Wilson CI)", share, lo, hi, n,
                          verdict_above(lo, hi, 0.5), note=f"{k} of {n}"))
    return parts


def _claim7(t: Tables) -> list[Part]:
    runs = _mlp(t, "normalization", activation=["sigmoid", "tanh"])
    gains, layer_gains = [], []
    for (act, depth), cell in runs.groupby(["activation", "depth"]):
        ratios = {norm: by_seed(sub, [first_last_ratio(t.profile(r, "backprop_norm")) for r in sub["run"]])
                  for norm, sub in cell.groupby("norm")}
        if "none" in ratios and "batch" in ratios:
            gains.append(paired(ratios["batch"], ratios["none"]))
        if "none" in ratios and "layer" in ratios:
            layer_gains.append(paired(ratios["layer"], ratios["none"]))
    parts = [ci_part("gain in log10 first/last backprop norm, batch - none", seed_mean(gains),
                     lambda lo, hi: verdict_above(lo, hi, 0.0), absent="needs norm none and batch")]
    deep = deepest(runs[(runs["activation"] == "sigmoid") & (runs["norm"] == "batch")])
    ratio = by_seed(deep, [first_last_ratio(t.profile(r, "backprop_norm")) for r in deep["run"]]) if not deep.empty else []
    depth = f" (depth {int(deep['depth'].iloc[0])})" if not deep.empty else ""
    parts.append(ci_part(f"sigmoid + batch norm, deepest: log10 first/last backprop norm{depth}", ratio,
                         lambda lo, hi: verdict_below(lo, hi, -1.0, -0.5), absent="no sigmoid + batch norm runs"))
    parts.append(ci_part("gain with layer norm - none", seed_mean(layer_gains), lambda lo, hi: verdict_above(lo, hi, 0.0),
                         decisive=False, absent="no layer-norm runs"))
    return parts


def _divergence_part(name: str, runs: pd.DataFrame, decisive: bool = True) -> Part:
    none, clipped = runs[runs["clip"] == "none"], runs[runs["clip"] != "none"]
    if none.empty or clipped.empty:
        return missing(name, "needs runs with and without clipping", decisive)
    k1, n1 = int((none["status"] == "diverged").sum()), len(none)
    k2, n2 = int((clipped["status"] == "diverged").sum()), len(clipped)
    d, lo, hi = newcombe_ci(k1, n1, k2, n2)
    note = f"diverged {k1}/{n1} unclipped, {k2}/{n2} clipped"
    if k1 == 0:
        note += "; no unclipped run diverged, nothing to prevent"
    return Part(name, d, lo, hi, n1 + n2, verdict_above(lo, hi, 0.0), note, decisive)


def _claim8(t: Tables) -> list[Part]:
    mlp, rnn = t.select("clipping_mlp"), t.select("clipping_rnn")
    return [
        _divergence_part("divergence rate unclipped - clipped (both studies)", pd.concat([mlp, rnn])),
        _divergence_part("clipping_mlp", mlp, decisive=False),
        _divergence_part("clipping_rnn", rnn, decisive=False),
    ]


# Decades of gradient decay through time are floored here: float32 carries 24 bits (7.2
# decades), so a dL/dh_1 more than 8 decades below dL/dh_T is lost in rounding when the
# weight gradient sums over t; whether it is 1e-9 or 1e-40 (or underflowed to 0) is noise
# that would only widen the interval.
DECAY_FLOOR_DECADES = 8.0


def _decay(t: Tables, run: str, step: Optional[int]) -> float:
    """log10 of dLoss/dh at t = 1 over t = T (how much gradient reaches the first step),
    floored at -DECAY_FLOOR_DECADES."""
    part = t.timesteps_of(run)
    if part.empty or step is None:
        return math.nan
    part = part[(part["quantity"].astype(str) == "hidden_grad_norm") & (part["step"] == step)]
    if part.empty:
        return math.nan
    series = part.groupby("t")["value"].mean().sort_index()
    return max(log10_ratio(float(series.iloc[0]), float(series.iloc[-1])), -DECAY_FLOOR_DECADES)


def _last_timestep_step(t: Tables, run: str) -> Optional[int]:
    part = t.timesteps_of(run)
    return int(part["step"].max()) if not part.empty else None


def _claim9(t: Tables) -> list[Part]:
    runs = t.select("memory", data=["adding", "copy"])
    trained: list[pd.Series] = []
    at_init: dict[str, list[pd.Series]] = {"gru": [], "lstm": []}
    task: list[pd.Series] = []
    notes = []
    for data, cell in runs.groupby("data"):
        longest = cell[cell["length"] == cell["length"].max()]
        rnn = longest[longest["model"] == "rnn"]
        if rnn.empty:
            continue

        def decays(frame: pd.DataFrame, initial: bool) -> pd.Series:
            return by_seed(frame, [_decay(t, r, 0 if initial else _last_timestep_step(t, r)) for r in frame["run"]])

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
    parts = [
        ci_part("decades of dL/dh_t kept from t=T to t=1 after training, gated - RNN", seed_mean(trained),
                lambda lo, hi: verdict_above(lo, hi, 1.0, 0.0), absent=absent),
    ]
    if task:
        parts.append(ci_part("skill of GRU/LSTM at the longest length where the RNN is at chance", seed_mean(task),
                             lambda lo, hi: verdict_above(lo, hi, TRAIN_SKILL, FAIL_SKILL), note="; ".join(notes)))
    elif notes:
        parts.append(Part("skill of GRU/LSTM where the RNN is at chance", verdict=INCONCLUSIVE, note="; ".join(notes)))
    else:
        parts.append(missing("skill of GRU/LSTM where the RNN is at chance", "needs rnn and gru/lstm runs"))
    for model, gaps in at_init.items():
        parts.append(ci_part(f"same at initialization, {model} - RNN", seed_mean(gaps),
                             lambda lo, hi: verdict_above(lo, hi, 1.0, 0.0), decisive=False, absent=absent))
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
    parts = [ci_part("test metric resmlp - mlp at the deepest depth where the MLP fails", seed_mean(diffs),
                     lambda lo, hi: verdict_above(lo, hi, 0.0), note="; ".join(notes),
                     absent="needs mlp and resmlp at a common depth")]
    if trained:
        parts.append(ci_part("skill of resmlp at that depth", seed_mean(trained),
                             lambda lo, hi: verdict_above(lo, hi, TRAIN_SKILL, FAIL_SKILL)))
    elif any(len(d) for d in diffs):
        parts.append(Part("skill of resmlp where the MLP fails", verdict=INCONCLUSIVE,
                          note="the plain MLP never fails at these depths"))
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
        ci_part(f"test accuracy linear depth {depth} - depth 1", paired(by_seed(deep, outcome(deep)), by_seed(one, outcome(one))),
                lambda lo, hi: verdict_within(lo, hi, LINEAR_TOLERANCE)),
        ci_part(f"test accuracy relu - linear at depth {depth}", paired(by_seed(relu, outcome(relu)), by_seed(deep, outcome(deep))),
                lambda lo, hi: INCONCLUSIVE, decisive=False, absent="no relu runs"),
    ]


def _claim12(t: Tables) -> list[Part]:
    step = _mlp(t, "linear_step", activation="step")
    if step.empty:
        return [missing("max hidden weight-gradient norm of step nets", "no step runs")]
    grads, updates = [], []
    for r in step["run"]:
        part = t.layers_of(r)
        g = part.value[part.hidden & (part.quantity == "weight_grad_norm")]
        u = part.value[part.hidden & (part.quantity == "update_ratio")]
        grads += g[np.isfinite(g)].tolist()
        updates += u[np.isfinite(u)].tolist()

    def exact(name: str, values: list[float]) -> Part:
        if not values:
            return missing(name, "no probed hidden layers")
        peak = float(np.max(np.abs(values)))
        return Part(name, peak, math.nan, math.nan, len(step), SUPPORTED if peak == 0.0 else CONTRADICTED,
                    note=f"exact: all {len(values)} probed values must be 0")

    parts = [exact("max hidden weight-gradient norm of step nets (all steps)", grads),
             exact("max hidden update ratio of step nets", updates)]
    diffs, skills = [], []
    for depth, cell in step.groupby("depth"):
        relu = _mlp(t, "linear_step", activation="relu", depth=depth)
        if not relu.empty:
            diffs.append(paired(by_seed(relu, outcome(relu)), by_seed(cell, outcome(cell))))
        skills.append(by_seed(cell, skill(cell)))
    parts.append(ci_part("test accuracy relu - step (same depth)", seed_mean(diffs), lambda lo, hi: verdict_above(lo, hi, 0.0),
                         decisive=False, absent="no relu runs"))
    parts.append(ci_part("skill of step nets (head-only learning)", seed_mean(skills), lambda lo, hi: INCONCLUSIVE, decisive=False))
    return parts


def _claim13(t: Tables) -> list[Part]:
    silu, relu = _mlp(t, "silu_relu", activation=["silu", "swish"]), _mlp(t, "silu_relu", activation="relu")
    if silu.empty or relu.empty:
        return [missing("test accuracy silu - relu", "needs silu and relu runs")]
    a, b = by_seed(silu, outcome(silu)), by_seed(relu, outcome(relu))
    diffs = paired(a, b)
    if len(diffs):
        return [ci_part("test accuracy silu - relu (paired by seed)", diffs, lambda lo, hi: verdict_above(lo, hi, 0.0))]
    # No common seeds: Welch interval of the difference of means.
    x, y = a.to_numpy(), b.to_numpy()
    if len(x) < 2 or len(y) < 2:
        return [Part("test accuracy silu - relu (unpaired)", float(x.mean() - y.mean()), n=len(x) + len(y),
                     verdict=INCONCLUSIVE, note="too few seeds for an interval")]
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    dof = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1)) if vx + vy > 0 else 1.0
    d = float(x.mean() - y.mean())
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, dof) * math.sqrt(vx + vy))
    return [Part("test accuracy silu - relu (Welch)", d, d - half, d + half, len(x) + len(y),
                 verdict_above(d - half, d + half, 0.0))]


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
    parts = [ci_part("max(|act mean|, |act std - 1|) over the deeper half of the layers, step 0",
                     by_seed(selu, [_deviation(t, r) for r in selu["run"]]),
                     lambda lo, hi: verdict_below(lo, hi, SELU_TOLERANCE))]
    for act, cell in runs[runs["activation"] != "selu"].groupby("activation"):
        parts.append(ci_part(f"same for {act}", by_seed(cell, [_deviation(t, r) for r in cell["run"]]),
                             lambda lo, hi: INCONCLUSIVE, decisive=False))
    return parts


THEORY_TOLERANCE = 0.10


def _claim15(t: Tables) -> list[Part]:
    runs = t.select("meanfield")
    if runs.empty:
        return [missing("median relative error of the predicted per-layer factor", "no meanfield runs")]
    table = theory.theory_table_from_arrays(runs, {r: t.layers_of(r) for r in runs["run"]})
    errors = table["rel_error"].astype(float).to_numpy() if not table.empty else np.array([])
    med, lo, hi, n = bootstrap_ci(errors)
    if n == 0:
        return [missing("median relative error of the predicted per-layer factor", "no measurable factors")]
    parts = [Part("median |measured - sqrt(chi_1)| / sqrt(chi_1) over runs (bootstrap CI)", med, lo, hi, n,
                  verdict_below(lo, hi, THEORY_TOLERANCE))]
    layerwise = (table["measured_factor"] - table["predicted_factor_layerwise"]).abs() / table["predicted_factor_layerwise"]
    m2, l2, h2, n2 = bootstrap_ci(layerwise.astype(float).to_numpy())
    parts.append(Part("same, prediction from the measured layer variances", m2, l2, h2, n2,
                      verdict_below(l2, h2, THEORY_TOLERANCE) if n2 else NO_DATA, decisive=False))
    return parts


def _rule(text: str) -> str:
    return f"{text} {CI_NOTE}"


_DEFINITIONS = [
    Claim(1, "Sigmoid gradients vanish with depth",
          "Sigmoid: the backpropagated gradient shrinks geometrically with depth (sigmoid' <= 1/4); "
          "the first layers barely change during training.",
          ("depth_activation_init",),
          "per-layer factor of the backprop norm at initialization (sigmoid, default init, deepest net)",
          _rule("Supported if the CI of the per-layer factor lies below 1 and the CI of log10(first / last "
                "hidden layer update ratio, mean over probed steps) lies below -1; contradicted if the "
                "factor's CI lies above 1 or the update-ratio CI lies above log10(0.5).")),
    Claim(2, "tanh vanishes more slowly than sigmoid",
          "tanh also vanishes with depth, more slowly than sigmoid (zero-centred, tanh'(0) = 1).",
          ("depth_activation_init",),
          "per-layer factor tanh minus sigmoid (default init, deepest common depth, paired by seed)",
          _rule("Supported if the CI of the factor difference lies above 0 and the CI of tanh's factor "
                "lies below 1; contradicted if the difference's CI lies below 0 or tanh's factor CI lies above 1.")),
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
          "ReLU dead-unit fraction (last probed step, mean over hidden layers): most negative bias minus bias 0",
          _rule("Supported if the CIs of the ReLU dead-fraction differences (negative bias - bias 0, paired by "
                "lr and seed; largest - smallest lr, paired by bias and seed) lie above 0, and every "
                "leaky_relu/prelu/elu run has at most 1% dead units with the CI of their per-seed mean at "
                "most 1%; contradicted if a difference's CI lies "
                "below 0 or the alternatives' mean dead fraction has its CI above 1%. The PReLU slope change "
                "is reported, not voted.")),
    Claim(6, "Symptoms of vanishing and exploding",
          "Symptoms: vanishing shows as near-zero change of the early layers and a flat loss; exploding "
          "shows as fast-growing weights, oscillating loss, then NaN.",
          ("init_scale", "clipping_mlp"),
          "log10 first-layer update ratio (mean over probed steps) with normal std 0.01",
          _rule("Vanishing (init_scale, std 0.01): the CI of log10 first-layer update ratio lies below -4 "
                "and the CI of the relative loss decrease (first - final) / first lies below 0.05 "
                "(contradicted above -2 resp. 0.25). Exploding (init_scale std 1.0, clipping_mlp unclipped): "
                "the CI of log10 weight-norm growth (last probed step / init) lies above log10(1.5) "
                "(contradicted below 0) and the Wilson CI of the share of diverged runs lies above 0.5 "
                "(contradicted below 0.5). Oscillation of the loss needs the step tables and is not tested.")),
    Claim(7, "Batch norm lessens vanishing, not in very deep sigmoid nets",
          "Batch normalization lessens vanishing in sigmoid/tanh networks but does not remove it in very "
          "deep sigmoid networks.",
          ("normalization",),
          "change of log10(first / last hidden backprop norm) at initialization, batch norm minus none",
          _rule("Supported if the CI of the change (paired by activation in {sigmoid, tanh}, depth and seed) "
                "lies above 0 and, for the deepest sigmoid net with batch norm, the CI of log10(first / last "
                "backprop norm) lies below -1; contradicted if the change's CI lies below 0 or the deep "
                "sigmoid ratio's CI lies above -0.5.")),
    Claim(8, "Clipping prevents divergence",
          "Gradient clipping prevents divergence where gradients explode (RNNs, large inits).",
          ("clipping_mlp", "clipping_rnn"),
          "divergence rate without clipping minus with clipping (clipping_mlp and clipping_rnn pooled)",
          "Supported if Newcombe's 95% interval of the difference of divergence rates lies above 0; "
          "contradicted if it lies below 0; inconclusive otherwise, in particular when no unclipped run "
          "diverged. Per-study differences are reported, not voted."),
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
          f"Supported if the 95% percentile-bootstrap CI (over runs, {BOOTSTRAP_RESAMPLES} resamples, seed "
          f"{BOOTSTRAP_SEED}) of the median relative error lies below {THEORY_TOLERANCE}; contradicted if it "
          f"lies above {THEORY_TOLERANCE}. The prediction from the measured layer variances is reported, not voted."),
]

_COMPUTE = {1: _claim1, 2: _claim2, 3: _claim3, 4: _claim4, 5: _claim5, 6: _claim6, 7: _claim7, 8: _claim8,
            9: _claim9, 10: _claim10, 11: _claim11, 12: _claim12, 13: _claim13, 14: _claim14, 15: _claim15}

# The registry: claim id -> Claim, in the paper's order.
CLAIMS: dict[int, Claim] = {c.id: replace(c, compute=_COMPUTE[c.id]) for c in _DEFINITIONS}


def evaluate_claims(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> pd.DataFrame:
    """Evaluate every claim of ``CLAIMS``: one row each, columns ``RESULT_COLUMNS``."""
    tables = Tables(runs, layers, timesteps)
    rows = []
    for claim in CLAIMS.values():
        result = claim.evaluate(runs, layers, timesteps, tables)
        rows.append({"claim": claim.id, "title": claim.title, "statement": claim.statement,
                     "study": ", ".join(claim.studies), "metric": claim.metric, "value": result.value,
                     "ci_low": result.ci_low, "ci_high": result.ci_high, "n": result.n,
                     "verdict": result.verdict, "rule": claim.rule, "detail": result.detail})
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def claim_parts(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> pd.DataFrame:
    """Every part of every claim: one row each, columns ``PART_COLUMNS``."""
    tables = Tables(runs, layers, timesteps)
    rows = []
    for claim in CLAIMS.values():
        result = claim.evaluate(runs, layers, timesteps, tables)
        for part in result.parts:
            rows.append({"claim": claim.id, "part": part.name, "value": part.value, "ci_low": part.ci_low,
                         "ci_high": part.ci_high, "n": part.n, "verdict": part.verdict,
                         "decisive": part.decisive, "note": part.note})
    return pd.DataFrame(rows, columns=list(PART_COLUMNS))

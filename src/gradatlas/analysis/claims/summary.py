"""The summary tables as the claims read them: runs by study and factor, per-run layers,
timesteps and step tables, and the measured per-layer factor (cached)."""

from __future__ import annotations

import copy
import functools
import math
from typing import Callable, Hashable, Mapping, Optional, TypeVar

import numpy as np
import pandas as pd

from gradatlas.analysis import theory

T = TypeVar("T")


class Tables:
    """The summary tables with per-run lookups (layers split by run once, lazily). ``steps`` is
    the summary's step tables (``aggregate.STEP_STUDIES``: the training loss at every step),
    empty where a caller has none."""

    def __init__(self, runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame,
                 steps: Optional[pd.DataFrame] = None) -> None:
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
        self.steps = steps if steps is not None else _EMPTY_STEPS
        self._steps_by_run: Optional[dict[str, pd.DataFrame]] = None
        self._layers_by_run: Optional[dict[str, theory.LayerArrays]] = None
        self._timesteps_by_run: Optional[dict[str, pd.DataFrame]] = None
        self._factor: dict[str, tuple[float, int]] = {}
        self._quantities: Optional[frozenset[str]] = None
        self._derived: dict[Hashable, object] = {}

    def renamed(self, studies: Mapping[str, str]) -> "Tables":
        """A view of the runs of ``studies`` (keys) under the names they map to, every other run
        left out: a claim reads a replica study as if it were its original. The layers and
        timesteps are shared, and so are the per-run caches (they are keyed by run)."""
        if self._layers_by_run is None and len(self.layers):
            self.layers_of("")  # split once, here, so that the view shares it
        view = copy.copy(self)
        runs = self.runs[self.runs["study"].isin(list(studies))] if "study" in self.runs else self.runs.iloc[0:0]
        view.runs = runs.assign(study=runs["study"].map(dict(studies))) if len(runs) else runs
        view._derived = {}  # derived from the runs, which the view renames: not shared
        return view

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

    def steps_of(self, run: str) -> pd.DataFrame:
        """The step table of one run (``step``, ``loss``, ...), empty if the summary has none."""
        if self._steps_by_run is None:
            self._steps_by_run = self._split(self.steps, tuple(self.steps.columns))
        return self._steps_by_run.get(str(run), _EMPTY_STEPS)

    def fit_layers(self, run: str, step: int = 0) -> tuple[theory.LayerArrays, int]:
        """The layers rows of a run without the (step, layer)s that the ``underflow`` probe flags
        (float32 gradient 0 or subnormal: not a measurement to fit), and how many hidden layers
        at ``step`` were flagged."""
        part = self.layers_of(run)
        flagged = part.hidden & (part.quantity == "underflow") & (part.value > 0)
        if not flagged.any():
            return part, 0
        key = part.step * (int(part.layer.max()) + 1) + part.layer  # one integer per (step, layer)
        # Rows of other kinds (per-example rows: layer is the example) keep their index.
        keep = ~np.isin(key, key[flagged]) | (part.quantity == "underflow") | ~part.hidden
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
        if self._quantities is None:
            found = self.layers["quantity"].unique() if "quantity" in self.layers else []
            self._quantities = frozenset(str(q) for q in found)
        return quantity in self._quantities

    def derived(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, once per ``key`` for these tables: a table a claim derives from the runs
        alone, whatever its thresholds (the sensitivity analysis evaluates each claim about a
        hundred times). A renamed view has its own."""
        if key not in self._derived:
            self._derived[key] = compute()
        return self._derived[key]  # type: ignore[return-value]


def per_tables(function: Callable[..., T]) -> Callable[..., T]:
    """``function(t, *args)`` computed once per ``Tables`` and ``args`` (``Tables.derived``): for a
    measure of the runs alone, whatever the thresholds. The arguments must be hashable (run
    names, quantities, numbers), and a caller must not change the result it is given back."""
    @functools.wraps(function)
    def cached(t: "Tables", *args: Hashable) -> T:
        return t.derived((function.__module__, function.__qualname__, args), lambda: function(t, *args))
    return cached


_EMPTY_LAYERS = theory.LayerArrays.from_frame(pd.DataFrame(columns=["step", "layer", "name", "quantity", "value"]))
_EMPTY_TIMESTEPS = pd.DataFrame(columns=["run", "step", "t", "quantity", "value"])
_EMPTY_STEPS = pd.DataFrame(columns=["run", "step", "loss"])

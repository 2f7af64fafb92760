"""Claim 20: batch norm makes gradients grow toward the input at initialization, at a rate set
by the batch size (Yang et al. 2019); layer norm's rate follows its own mean field."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from gradatlas.analysis import theory
from gradatlas.analysis.claims.claim import Claim, rule_text
from gradatlas.analysis.claims.measures import mlp_runs
from gradatlas.analysis.claims.parts import Part, missing, seed_part
from gradatlas.analysis.claims.summary import Tables, per_tables
from gradatlas.analysis.claims.thresholds import Threshold, ThresholdValues
from gradatlas.analysis.claims.verdicts import above, within

STUDY = "batchnorm_explosion"
# Layer 0's input is the data, not a normalized layer: the fit starts at layer 1.
FIRST_FITTED_LAYER = 1
LARGE_BATCH_LIMIT = math.sqrt(math.pi / (math.pi - 1))  # ReLU's per-layer norm factor as B -> infinity
GROWTH_BOUND = Threshold("GROWTH_BOUND", 1.0, "per-layer norm factor between shrinking and growing", 0.9, 1.1, log=True)
LIMIT_TOLERANCE = Threshold("LIMIT_TOLERANCE", 0.05, "|ln(ReLU factor at the largest batch / sqrt(pi/(pi-1)))| that "
                            "supports", 0.01, 0.2, log=True)
THEORY_TOLERANCE = Threshold("THEORY_TOLERANCE", 0.05, "|ln(measured / predicted factor)|, mean over cells, that "
                             "supports", 0.01, 0.2, log=True)
BATCH_EFFECT_BOUND = Threshold("BATCH_EFFECT_BOUND", 0.0, "ln(ReLU factor at the smallest / at the largest batch) "
                               "above which the smaller batch grows faster", -0.05, 0.1)
THRESHOLDS = (GROWTH_BOUND, LIMIT_TOLERANCE, THEORY_TOLERANCE, BATCH_EFFECT_BOUND)


def predicted_factor(activation: str, norm: str, batch: int) -> float:
    """The mean-field per-layer norm factor: sqrt of batch norm's rate at the batch size, or of
    layer norm's."""
    if norm == "batch":
        return math.sqrt(theory.batchnorm_chi(activation, batch=batch))
    return math.sqrt(theory.layernorm_chi(activation))


@per_tables
def factors(t: Tables) -> pd.DataFrame:
    """One row per run: activation, norm, batch size, depth, seed, measured and predicted factor
    (once per summary; a caller must not change it)."""
    runs = mlp_runs(t, STUDY)
    rows = []
    for run in runs.itertuples(index=False):
        part, _ = t.fit_layers(run.run, 0)
        fit = theory.factor_fit(part, 0, from_layer=FIRST_FITTED_LAYER) if len(part) else {"factor": math.nan}
        rows.append({"activation": run.activation, "norm": run.norm, "batch_size": int(run.batch_size),
                     "depth": int(run.depth), "seed": run.seed, "measured": fit["factor"],
                     "predicted": predicted_factor(str(run.activation), str(run.norm), int(run.batch_size))})
    frame = pd.DataFrame(rows, columns=["activation", "norm", "batch_size", "depth", "seed", "measured", "predicted"])
    if frame.empty:
        return frame
    frame["measured"] = frame["measured"].astype(float)
    return frame[np.isfinite(frame["measured"]) & (frame["measured"] > 0)]


def _seed_mean(frame: pd.DataFrame, values: pd.Series) -> pd.Series:
    return values.groupby(frame["seed"]).mean()


def compute(t: Tables, th: ThresholdValues) -> list[Part]:
    """Per activation: batch norm's factor above 1; ReLU at the largest batch against the limit;
    every cell against its finite-batch prediction; ReLU's smallest against largest batch;
    layer norm against its own prediction (ReLU: 1)."""
    frame = factors(t)
    if frame.empty:
        return [missing("per-layer factor with batch norm", f"no {STUDY} runs")]
    batch, layer = frame[frame["norm"] == "batch"], frame[frame["norm"] == "layer"]
    parts: list[Part] = []
    for act in sorted(batch["activation"].unique(), key=lambda a: (a != "relu", a)):
        cells = batch[batch["activation"] == act]
        parts.append(seed_part(f"{act} + batch norm: per-layer factor toward the input (geometric mean over "
                               f"batch sizes, depths and gains)", _seed_mean(cells, np.log(cells["measured"])).map(np.exp),
                               above(th.GROWTH_BOUND), log=True))
    relu = batch[batch["activation"] == "relu"]
    if relu.empty:
        parts.append(missing("relu + batch norm at the largest batch", "no relu runs with batch norm"))
    else:
        largest, smallest = relu["batch_size"].max(), relu["batch_size"].min()
        top = relu[relu["batch_size"] == largest]
        parts.append(seed_part(f"relu, batch {largest}: ln(factor / sqrt(pi/(pi-1))) (theory at this batch: "
                               f"{math.log(predicted_factor('relu', 'batch', int(largest)) / LARGE_BATCH_LIMIT):.3g})",
                               _seed_mean(top, np.log(top["measured"] / LARGE_BATCH_LIMIT)), within(th.LIMIT_TOLERANCE)))
        low = relu[relu["batch_size"] == smallest]
        effect = (_seed_mean(low, np.log(low["measured"])) - _seed_mean(top, np.log(top["measured"]))).dropna()
        parts.append(seed_part(f"relu: ln(factor at batch {smallest} / at batch {largest}) (theory "
                               f"{math.log(predicted_factor('relu', 'batch', int(smallest)) / predicted_factor('relu', 'batch', int(largest))):.3g})",
                               effect, above(th.BATCH_EFFECT_BOUND)))
    parts.append(seed_part("batch norm: ln(measured / predicted factor at the run's batch size), mean over cells",
                           _seed_mean(batch, np.log(batch["measured"] / batch["predicted"])),
                           within(th.THEORY_TOLERANCE), absent="no runs with batch norm"))
    relu_ln = layer[layer["activation"] == "relu"]
    parts.append(seed_part("relu + layer norm: ln(per-layer factor) (theory 0: no explosion)",
                           _seed_mean(relu_ln, np.log(relu_ln["measured"])), within(th.THEORY_TOLERANCE),
                           absent="no relu runs with layer norm"))
    parts.append(seed_part("layer norm: ln(measured / predicted factor E[phi'^2]/E[phi^2]), mean over cells",
                           _seed_mean(layer, np.log(layer["measured"] / layer["predicted"])),
                           within(th.THEORY_TOLERANCE), absent="no runs with layer norm"))
    return parts


CLAIM = Claim(
    20, "Batch norm explodes gradients at initialization",
    "In deep batch-normalized MLPs at initialization the gradient grows toward the input for every nonlinearity "
    "and weight scale, at a per-layer rate set by the batch size: smaller batches grow faster, and for ReLU the "
    "norm's factor tends to sqrt(pi/(pi-1)) ~ 1.21 at large batch (Yang et al. 2019). Layer norm normalizes each "
    "example instead; its factor sqrt(E[phi'^2]/E[phi^2]) is 1 for ReLU (no explosion).",
    (STUDY,),
    "per-layer factor of the backpropagated gradient norm (fit over hidden layers 1..L-1) against the mean field",
    rule_text(f"Per seed (the replicate), over the cells of {STUDY}: supported if, for every activation, the "
              f"interval of batch norm's factor lies above {GROWTH_BOUND}; ReLU's ln(factor / sqrt(pi/(pi-1))) at "
              f"the largest batch within +-{LIMIT_TOLERANCE}; ReLU's ln(factor at the smallest / largest batch) "
              f"above {BATCH_EFFECT_BOUND}; the mean ln(measured / predicted) within +-{THEORY_TOLERANCE} for batch "
              f"norm (at each run's batch size) and for layer norm; and ReLU with layer norm's ln(factor) within "
              f"+-{THEORY_TOLERANCE}; each contradicted if its interval lies entirely on the other side."),
    compute, THRESHOLDS)

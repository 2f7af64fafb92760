"""Figures draw what they are given: line and bar heights, heatmap cells and axis scales are
checked against the synthetic input, aggregated as each function documents."""

from __future__ import annotations

import inspect
import math
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from gradatlas.analysis import figures
from gradatlas.analysis.figures import (FIGURES, NoData, activations, exploding, normalization, output, recurrent,
                                        registry, residual, units)
from gradatlas.analysis.figures import depth as depth_figures
from gradatlas.analysis.figures import theory as theory_figures
from gradatlas.analysis.figures.__main__ import stale_captions, write_captions

pytestmark = pytest.mark.unit

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


# ---------------------------------------------------------------------------------------
# Helpers.

def axes_titled(fig: Figure) -> dict[str, object]:
    """The figure's panels by title."""
    return {ax.get_title(): ax for ax in fig.axes if ax.get_title()}


def lines(ax) -> dict[str, object]:
    """The axes' data lines by label (labels starting with '_' are reference lines)."""
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}


def bars(ax) -> dict[str, list[float]]:
    """Bar heights per hue level (container label), NaN-free."""
    return {c.get_label(): [p.get_height() for p in c] for c in ax.containers}


def layer_rows(study: str, runs: list[dict], quantities: dict[str, callable], steps=(0,), layers=3) -> pd.DataFrame:
    """Long layer rows: for each run, step, layer and quantity, value = quantities[q](run, step, layer)."""
    rows = []
    for run in runs:
        for step in run.get("steps", steps):
            for layer in range(run.get("layers", layers)):
                for quantity, value in quantities.items():
                    rows.append({**{k: v for k, v in run.items() if k not in ("steps", "layers")}, "study": study,
                                 "step": step, "layer": layer, "name": f"hidden.{layer}", "quantity": quantity,
                                 "value": value(run["run"], step, layer)})
    frame = pd.DataFrame(rows)
    # The summary tables store these as categoricals; the figures must cope.
    for column in ("run", "study", "quantity", "activation", "init", "model", "norm", "name"):
        if column in frame:
            frame[column] = frame[column].astype("category")
    return frame


def value_of(run: str, step: int, layer: int) -> float:
    """A deterministic positive value that differs for every (run, step, layer)."""
    h = sum(ord(c) * (i + 1) for i, c in enumerate(run)) % 997
    return float(10.0 ** (-(h % 7) - 0.3 * layer) * (1 + 0.1 * step))


# ---------------------------------------------------------------------------------------
# Activation gallery: independent closed forms.

def test_activation_gallery_draws_each_activation_and_its_derivative():
    fig = activations.activation_gallery(["sigmoid", "relu", "selu", "tanh"], z_min=-2.0, z_max=2.0, points=9)
    panels = axes_titled(fig)
    assert set(panels) == {"sigmoid", "relu", "selu", "tanh"}
    z = np.linspace(-2.0, 2.0, 9)
    s = 1.0 / (1.0 + np.exp(-z))
    expected = {
        "sigmoid": (s, s * (1 - s)),
        "relu": (np.maximum(z, 0), (z > 0).astype(float)),
        "selu": (SELU_SCALE * np.where(z > 0, z, SELU_ALPHA * (np.exp(z) - 1)),
                 SELU_SCALE * np.where(z > 0, 1.0, SELU_ALPHA * np.exp(z))),
        "tanh": (np.tanh(z), 1 - np.tanh(z) ** 2),
    }
    for name, (phi, dphi) in expected.items():
        drawn = lines(panels[name])
        np.testing.assert_allclose(drawn["activation φ(z)"].get_xdata(), z, atol=1e-12)
        np.testing.assert_allclose(drawn["activation φ(z)"].get_ydata(), phi, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(drawn["derivative φ′(z)"].get_ydata(), dphi, rtol=1e-6, atol=1e-12)
        assert drawn["derivative φ′(z)"].get_linestyle() == "--"
    assert fig.get_figwidth() == pytest.approx(figures.DOUBLE_COLUMN)


def test_activation_gallery_default_shows_every_activation_once():
    fig = activations.activation_gallery(points=5)
    titles = set(axes_titled(fig))
    assert "swish" not in titles and "silu" in titles  # swish is an alias of silu
    assert titles == set(activations.gallery_names())
    assert len(titles) == 12  # 13 names, swish an alias


# ---------------------------------------------------------------------------------------
# Backprop norm against layer.

def _depth_runs() -> list[dict]:
    runs = []
    for act in ("sigmoid", "relu"):
        for init in ("default", "he_normal"):
            for depth in (3, 5):
                for seed in (0, 1):
                    run = f"d/{act}/{init}/{depth}/{seed}"
                    # One run stopped early: its last probed step is 2, not 4.
                    steps = (0, 1, 2) if (act, init, depth, seed) == ("relu", "he_normal", 5, 1) else (0, 1, 2, 4)
                    runs.append({"run": run, "activation": act, "init": init, "depth": float(depth),
                                 "seed": seed, "steps": steps, "layers": depth + 1})
    return runs


def test_backprop_norm_vs_layer_plots_seed_means_at_init_and_last_step():
    frame = layer_rows("depth_activation_init", _depth_runs(), {"backprop_norm": value_of, "act_std": lambda *a: 7.0})
    other = layer_rows("residual", [{"run": "x", "activation": "relu", "init": "default", "depth": 5.0, "seed": 0}],
                       {"backprop_norm": lambda *a: 1e9})
    fig = depth_figures.backprop_norm_vs_layer(pd.concat([frame, other], ignore_index=True))
    panels = axes_titled(fig)
    assert set(panels) == {f"{a}, {w}" for a in ("sigmoid", "relu") for w in ("initialization", "last probed step")}
    for act in ("sigmoid", "relu"):
        for init in ("default", "he_normal"):
            runs = [r for r in _depth_runs() if (r["activation"], r["init"], r["depth"]) == (act, init, 5.0)]
            at_init = [np.mean([value_of(r["run"], 0, layer) for r in runs]) for layer in range(6)]
            at_last = [np.mean([value_of(r["run"], r["steps"][-1], layer) for r in runs]) for layer in range(6)]
            line = lines(panels[f"{act}, initialization"])[init]
            np.testing.assert_array_equal(line.get_xdata(), np.arange(6))
            np.testing.assert_allclose(line.get_ydata(), at_init, rtol=1e-12)
            np.testing.assert_allclose(lines(panels[f"{act}, last probed step"])[init].get_ydata(), at_last, rtol=1e-12)
    for ax in panels.values():
        assert ax.get_yscale() == "log"
    assert "backprop" in fig.axes[0].get_ylabel()
    # An explicit depth picks the shallower networks.
    shallow = depth_figures.backprop_norm_vs_layer(frame, depth=3)
    assert len(lines(axes_titled(shallow)["relu, initialization"])["default"].get_xdata()) == 4


def test_backprop_norm_vs_layer_wraps_many_activations_into_pairs_of_rows():
    acts = ("sigmoid", "tanh", "relu", "elu", "selu")
    runs = [{"run": f"{a}/{s}", "activation": a, "init": "he_normal", "depth": 4.0, "seed": s, "steps": (0, 2)}
            for a in acts for s in (0, 1)]
    fig = depth_figures.backprop_norm_vs_layer(layer_rows("depth_activation_init", runs, {"backprop_norm": value_of}))
    visible = [ax for ax in fig.axes if ax.axison]
    assert len(fig.axes) == 16 and len(visible) == 10  # 4 rows x 4 columns, 6 panels unused
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[4] == "sigmoid, last probed step" and titles[8] == "selu, initialization"
    # All panels share one y range, so the decay is comparable across activations.
    assert len({ax.get_ylim() for ax in visible}) == 1


def test_backprop_norm_vs_layer_raises_no_data():
    with pytest.raises(NoData):
        depth_figures.backprop_norm_vs_layer(pd.DataFrame())
    frame = layer_rows("selu", [{"run": "x", "activation": "relu", "init": "default", "depth": 3.0, "seed": 0}],
                       {"backprop_norm": value_of})
    with pytest.raises(NoData, match="depth_activation_init"):
        depth_figures.backprop_norm_vs_layer(frame)


# ---------------------------------------------------------------------------------------
# Accuracy heatmap.

def _accuracy_runs() -> pd.DataFrame:
    rows = []
    rng = np.random.default_rng(0)
    for act in ("sigmoid", "tanh", "relu"):
        for init in ("default", "xavier_normal", "he_normal"):
            for depth in (2.0, 10.0):
                for seed in range(3):
                    rows.append({"run": f"{act}/{init}/{depth}/{seed}", "study": "depth_activation_init",
                                 "activation": act, "init": init, "depth": depth, "seed": seed,
                                 "status": "ok", "test_metric": float(rng.uniform(0.1, 0.9)),
                                 "metric": "accuracy", "chance": 0.1})
    frame = pd.DataFrame(rows)
    diverged = frame.index[(frame["activation"] == "relu") & (frame["init"] == "default") & (frame["seed"] == 0)]
    frame.loc[diverged, ["status", "test_metric"]] = ["diverged", np.nan]
    return frame


def test_accuracy_heatmap_cells_are_seed_means_per_depth():
    runs = _accuracy_runs()
    fig = depth_figures.accuracy_heatmap(runs)
    panels = axes_titled(fig)
    assert set(panels) == {"depth 2 (chance 0.1)", "depth 10 (chance 0.1)"}
    for depth in (2.0, 10.0):
        ax = panels[f"depth {int(depth)} (chance 0.1)"]
        expected = (runs[runs["depth"] == depth].pivot_table(index="activation", columns="init", values="test_metric",
                                                              aggfunc="mean")
                    .reindex(index=["sigmoid", "tanh", "relu"], columns=["default", "xavier_normal", "he_normal"]))
        cells = np.asarray(ax.collections[0].get_array()).reshape(3, 3)
        np.testing.assert_allclose(cells, expected.to_numpy(), rtol=1e-12)
        assert [t.get_text() for t in ax.get_yticklabels()] == ["sigmoid", "tanh", "relu"]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["default", "xavier_normal", "he_normal"]
    # The diverged run (NaN metric) is left out of its cell's mean, not counted as zero.
    ax = panels["depth 2 (chance 0.1)"]
    kept = runs[(runs["depth"] == 2.0) & (runs["activation"] == "relu") & (runs["init"] == "default")]["test_metric"]
    assert np.asarray(ax.collections[0].get_array()).reshape(3, 3)[2, 0] == pytest.approx(kept.dropna().mean())
    colorbar = [a for a in fig.axes if a not in panels.values()]
    assert colorbar and "accuracy" in colorbar[0].get_ylabel()


def test_accuracy_heatmap_raises_no_data():
    with pytest.raises(NoData):
        depth_figures.accuracy_heatmap(_accuracy_runs().assign(study="selu"))
    with pytest.raises(NoData):
        depth_figures.accuracy_heatmap(_accuracy_runs().iloc[0:0])


# ---------------------------------------------------------------------------------------
# Normalization.

def _norm_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, layer_runs = [], []
    for act in ("sigmoid", "relu"):
        for norm in ("none", "batch", "layer"):
            for seed in (0, 1):
                run = f"n/{act}/{norm}/{seed}"
                runs.append({"run": run, "study": "normalization", "activation": act, "norm": norm, "depth": 10.0,
                             "seed": seed, "status": "ok", "test_metric": 0.1 + 0.01 * len(run) + 0.05 * seed,
                             "metric": "accuracy", "chance": 0.1})
                layer_runs.append({"run": run, "activation": act, "norm": norm, "depth": 10.0, "seed": seed})
    layers = layer_rows("normalization", layer_runs, {"backprop_norm": value_of}, steps=(0, 3))
    return pd.DataFrame(runs), layers


def test_normalization_effect_shows_first_layer_gradient_and_accuracy():
    runs, layers = _norm_frames()
    fig = normalization.normalization_effect(runs, layers)
    top, bottom = fig.axes[0], fig.axes[1]
    assert top.get_title() == "depth 10"
    assert top.get_yscale() == "log" and "backprop" in top.get_ylabel()
    assert "accuracy" in bottom.get_ylabel()
    for norm in ("none", "batch", "layer"):
        grad = [np.mean([value_of(f"n/{a}/{norm}/{s}", 0, 0) for s in (0, 1)]) for a in ("sigmoid", "relu")]
        acc = [runs[(runs["activation"] == a) & (runs["norm"] == norm)]["test_metric"].mean()
               for a in ("sigmoid", "relu")]
        np.testing.assert_allclose(lines(top)[norm].get_ydata(), grad, rtol=1e-12)
        # Each point sits above its bar: same dodge for the same normalization.
        container = [c for c in bottom.containers if c.get_label() == norm][0]
        np.testing.assert_allclose(lines(top)[norm].get_xdata(), [p.get_x() + p.get_width() / 2 for p in container])
        np.testing.assert_allclose(bars(bottom)[norm], acc, rtol=1e-12)


def test_normalization_effect_raises_no_data_only_when_both_tables_lack_the_study():
    runs, layers = _norm_frames()
    with pytest.raises(NoData):
        normalization.normalization_effect(runs.assign(study="other"), layers.iloc[0:0])
    fig = normalization.normalization_effect(runs, layers.iloc[0:0])  # accuracy alone still draws
    assert bars(fig.axes[1])


# ---------------------------------------------------------------------------------------
# Residual against plain.

def test_residual_vs_plain_lines_are_seed_means_over_depth():
    rows = []
    for model in ("mlp", "resmlp"):
        for depth in (5.0, 20.0, 50.0):
            for seed in (0, 1):
                rows.append({"run": f"{model}/{depth}/{seed}", "study": "residual", "model": model,
                             "activation": "relu",
                             "depth": depth, "seed": seed, "status": "ok", "metric": "accuracy", "chance": 0.1,
                             "test_metric": (0.9 if model == "resmlp" else 1.0 / depth) + 0.01 * seed})
    runs = pd.DataFrame(rows)
    fig = residual.residual_vs_plain(runs)
    ax = axes_titled(fig)["relu"]
    drawn = lines(ax)
    np.testing.assert_allclose(drawn["residual MLP"].get_ydata(), [0.905] * 3)
    np.testing.assert_allclose(drawn["plain MLP"].get_xdata(), [5, 20, 50])
    np.testing.assert_allclose(drawn["plain MLP"].get_ydata(), [0.205, 0.055, 0.025])
    assert ax.get_xscale() == "log"
    assert "accuracy" in ax.get_ylabel()
    with pytest.raises(NoData):
        residual.residual_vs_plain(runs[runs["study"] == "nothing"])


# ---------------------------------------------------------------------------------------
# Gradient through time.

def _timestep_frame() -> pd.DataFrame:
    rows = []
    for model in ("rnn", "gru", "lstm"):
        for seed in (0, 1):
            for step in (0, 5):
                for t in range(1, 5):
                    value = {"rnn": 0.1, "gru": 0.5, "lstm": 0.9}[model] ** (4 - t) * (1 + seed) * (1 + step)
                    for quantity, v in (("hidden_grad_norm", value), ("hidden_norm", 3.0)):
                        rows.append({"run": f"{model}/{seed}", "study": "memory", "model": model, "data": "adding",
                                     "length": 4.0, "seed": seed, "step": step, "t": t, "quantity": quantity,
                                     "value": v})
    return pd.DataFrame(rows).astype({"quantity": "category", "model": "category"})


def test_hidden_grad_vs_distance_is_against_t_minus_distance_on_log_y():
    fig = recurrent.hidden_grad_vs_distance(_timestep_frame())
    ax = axes_titled(fig)["adding, T = 4"]
    drawn = lines(ax)
    for model, label, base in (("rnn", "RNN", 0.1), ("gru", "GRU", 0.5), ("lstm", "LSTM", 0.9)):
        distance = np.arange(4)  # T - t for t = 4, 3, 2, 1
        np.testing.assert_array_equal(drawn[f"{label}, init"].get_xdata(), distance)
        np.testing.assert_allclose(drawn[f"{label}, init"].get_ydata(), 1.5 * base ** distance)  # mean of seeds 1, 2
        np.testing.assert_allclose(drawn[f"{label}, last step"].get_ydata(), 6 * 1.5 * base ** distance)
        assert drawn[f"{label}, last step"].get_linestyle() == "--"
    assert ax.get_yscale() == "log"
    assert "h_t" in ax.get_ylabel() and "T − t" in ax.get_xlabel()
    with pytest.raises(NoData):
        recurrent.hidden_grad_vs_distance(_timestep_frame().assign(study="x"))


def test_hidden_grad_vs_distance_axis_ignores_an_underflowed_seed():
    # Seed 0 of the RNN decays to a denormal (1e-40) at the far end: the min..max band would
    # stretch the axis over 40 decades; it stops a decade below the lowest mean line.
    frame = _timestep_frame()
    frame.loc[(frame["run"] == "rnn/0") & (frame["t"] == 1), "value"] = 1e-40
    ax = axes_titled(recurrent.hidden_grad_vs_distance(frame))["adding, T = 4"]
    lowest = min(y for line in ax.get_lines() for y in line.get_ydata() if y > 0)
    assert ax.get_ylim()[0] == pytest.approx(lowest / 10)


# ---------------------------------------------------------------------------------------
# Clipping.

def _clipping_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    runs, steps = [], []
    for lr in (0.01, 1.0):
        for clip in ("none", "norm"):
            for seed in range(4):
                run = f"clipping_mlp/lr-{lr}/clip-{clip}/seed-{seed}"
                # Without clipping at lr 1: 3 of 4 seeds diverge; one run failed (left out of the share).
                status = "diverged" if (lr == 1.0 and clip == "none" and seed < 3) else "ok"
                status = "failed" if (lr == 0.01 and clip == "norm" and seed == 3) else status
                runs.append({"run": run, "study": "clipping_mlp", "lr": lr, "clip": clip, "seed": seed,
                             "gain": 1.0, "status": status})
                loss = [2.0 / (1 + k + seed) for k in range(5)]
                if status == "diverged":
                    loss = [2.0, 50.0, 3e4, np.nan, np.nan]
                steps += [{"run": run, "step": k, "loss": v, "grad_norm": 1.0} for k, v in enumerate(loss)]
    return pd.DataFrame(runs), pd.DataFrame(steps)


def test_clipping_draws_loss_curves_and_divergence_share():
    runs, steps = _clipping_frames()
    fig = exploding.clipping(runs, steps)
    panels = axes_titled(fig)
    top = panels["clipping_mlp\nlr = 1"]
    drawn = lines(top)
    hardest = runs[runs["lr"] == 1.0]["run"]
    assert set(drawn) == set(hardest)  # one curve per run at the largest learning rate
    for run in hardest:
        expected = steps[steps["run"] == run]["loss"].to_numpy()
        np.testing.assert_allclose(drawn[run].get_ydata(), expected)
    assert top.get_yscale() == "log" and "loss" in top.get_ylabel()
    markers = [line for line in top.get_lines() if line.get_label().startswith("_diverged")]
    assert len(markers) == 3 and all(line.get_ydata()[0] == 3e4 for line in markers)
    bottom = [ax for ax in fig.axes if ax.containers][0]
    share = bars(bottom)
    np.testing.assert_allclose(share["none"], [0.0, 0.75])
    np.testing.assert_allclose(share["norm"], [0.0, 0.0])
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["0.01", "1"]
    assert "diverged" in bottom.get_ylabel()


def test_clipping_without_steps_still_shows_divergence_and_raises_without_runs():
    runs, _ = _clipping_frames()
    fig = exploding.clipping(runs, None)
    assert bars([ax for ax in fig.axes if ax.containers][0])["none"][1] == pytest.approx(0.75)
    with pytest.raises(NoData):
        exploding.clipping(runs.assign(study="other"), None)


# ---------------------------------------------------------------------------------------
# Dead units and PReLU slope.

def _dying_frame() -> pd.DataFrame:
    runs = []
    for act in ("relu", "prelu"):
        for lr in (0.01, 0.1, 1.0):
            for bias in (0.0, -1.0):
                for seed in (0, 1):
                    runs.append({"run": f"{act}/{lr}/{bias}/{seed}", "activation": act, "lr": lr, "bias": bias,
                                 "seed": seed, "steps": (0, 1, 8) if seed else (0, 1, 4)})

    def dead(run, step, layer):
        return min(1.0, 0.1 * layer + 0.05 * step + 0.01 * (len(run) % 5))

    def slope(run, step, layer):
        return 0.25 - 0.01 * step * (layer + 1) + 0.001 * int(run[-1])

    frame = layer_rows("dying_relu", runs, {"dead_frac": dead, "prelu_slope": slope})
    return frame[~((frame["quantity"] == "prelu_slope") & (frame["activation"] == "relu"))]


def test_dead_units_vs_lr_is_last_step_mean_over_layers_then_seeds():
    frame = _dying_frame()
    fig = units.dead_units_vs_lr(frame)
    panels = axes_titled(fig)
    # A summary without died_frac (older probes): one view, dead units at the last probe.
    assert set(panels) == {"bias init -1:\ndead units (last probe)", "bias init 0:\ndead units (last probe)"}
    for bias, title in ((0.0, "bias init 0:\ndead units (last probe)"), (-1.0, "bias init -1:\ndead units (last probe)")):
        for act in ("relu", "prelu"):
            expected = []
            for lr in (0.01, 0.1, 1.0):
                per_seed = []
                for seed, last in ((0, 4), (1, 8)):
                    run = f"{act}/{lr}/{bias}/{seed}"
                    per_seed.append(np.mean([min(1.0, 0.1 * layer + 0.05 * last + 0.01 * (len(run) % 5))
                                             for layer in range(3)]))
                expected.append(np.mean(per_seed))
            line = lines(panels[title])[act]
            # Each activation's points are moved apart along the log axis by one constant factor.
            ratio = np.asarray(line.get_xdata()) / [0.01, 0.1, 1.0]
            np.testing.assert_allclose(ratio, ratio[0])
            assert 1 / units.DODGE <= ratio[0] <= units.DODGE
            np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-12)
        assert panels[title].get_xscale() == "log"
    assert "share of units" in fig.axes[0].get_ylabel()
    assert fig.get_figwidth() == pytest.approx(figures.SINGLE_COLUMN)
    shifted = frame.assign(bias=frame["bias"] - 2.0, run=frame["run"].astype(str) + "-shifted")
    four = pd.concat([frame, shifted], ignore_index=True)
    wrapped = units.dead_units_vs_lr(four)  # four bias panels wrap into 2 x 2
    assert len([ax for ax in wrapped.axes if ax.axison]) == 4
    assert wrapped.get_figwidth() == pytest.approx(figures.SINGLE_COLUMN)
    with pytest.raises(NoData):
        units.dead_units_vs_lr(frame[frame["quantity"] == "prelu_slope"])


def test_dead_units_vs_lr_separates_dead_at_init_from_died_in_training():
    runs = [{"run": f"relu/{lr}/{seed}", "activation": "relu", "lr": lr, "bias": -1.0, "seed": seed,
             "steps": (0, 8)} for lr in (0.01, 1.0) for seed in (0, 1)]

    def dead(run, step, layer):
        return 0.6  # bias -1: dead from step 0, whatever the lr

    def died(run, step, layer):
        return 0.0 if step == 0 else (0.3 if run.startswith("relu/1.0") else 0.01)

    fig = units.dead_units_vs_lr(layer_rows("dying_relu", runs, {"dead_frac": dead, "died_frac": died}))
    panels = axes_titled(fig)
    init = lines(panels["bias init -1:\ndead at initialization"])["relu"]
    during = lines(panels["bias init -1:\ndied in training (last probe)"])["relu"]
    np.testing.assert_allclose(init.get_ydata(), [0.6, 0.6])
    np.testing.assert_allclose(during.get_ydata(), [0.01, 0.3])


def test_mean_curves_leave_out_diverged_runs_and_mark_them():
    runs = [{"run": f"prelu/{seed}", "activation": "prelu", "lr": 1.0, "bias": 0.0, "seed": seed,
             "status": "diverged" if seed == 2 else "ok", "steps": (0, 4)} for seed in range(3)]

    def slope(run, step, layer):
        if run.endswith("2") and step == 4:
            return 5e4  # a diverged run's slopes blow up: they must not enter the mean
        return 0.25 - 0.01 * step

    fig = units.prelu_slope(layer_rows("dying_relu", runs, {"prelu_slope": slope}, layers=1))
    ax = fig.axes[0]
    np.testing.assert_allclose(lines(ax)["layer 0"].get_ydata(), [0.25, 0.21])
    marks = [line for line in ax.get_lines() if line.get_label().endswith("diverged")]
    assert len(marks) == 1 and list(marks[0].get_ydata()) == [0.25, 5e4]
    assert ax.get_ylim()[1] < 1.0  # the marks do not stretch the axis


def test_prelu_slope_lines_per_layer_at_largest_lr():
    frame = _dying_frame()
    fig = units.prelu_slope(frame)
    panels = axes_titled(fig)
    assert set(panels) == {"bias init -1, lr 1", "bias init 0, lr 1"}
    drawn = lines(panels["bias init 0, lr 1"])
    assert set(drawn) == {"layer 0", "layer 1", "layer 2"}
    for layer in range(3):
        # Steps 0 and 1 have both seeds; 4 and 8 one seed each.
        mean = {s: np.mean([0.25 - 0.01 * s * (layer + 1) + 0.001 * seed for seed in (0, 1)]) for s in (0, 1)}
        expected = [mean[0], mean[1], 0.25 - 0.04 * (layer + 1), 0.25 - 0.08 * (layer + 1) + 0.001]
        np.testing.assert_allclose(drawn[f"layer {layer}"].get_xdata(), [0, 1, 4, 8])
        np.testing.assert_allclose(drawn[f"layer {layer}"].get_ydata(), expected, rtol=1e-12)
    assert panels["bias init 0, lr 1"].get_xscale() == "symlog"
    assert "slope" in fig.axes[0].get_ylabel().lower()
    at_small = units.prelu_slope(frame, lr=0.01)
    assert "bias init 0, lr 0.01" in axes_titled(at_small)
    with pytest.raises(NoData):
        units.prelu_slope(frame[frame["quantity"] == "dead_frac"])


# ---------------------------------------------------------------------------------------
# SELU statistics.

def test_selu_statistics_mean_and_std_against_layer_at_step_0():
    runs = [{"run": f"{a}/{s}", "activation": a, "seed": s} for a in ("selu", "relu") for s in (0, 1)]
    stats = {"act_mean": lambda run, step, layer: (0.0 if run.startswith("selu") else 0.5 ** layer) + 0.01 * step,
             "act_std": lambda run, step, layer: (1.0 if run.startswith("selu") else 0.7 ** layer) * (1 + step)}
    frame = layer_rows("selu", runs, stats, steps=(0, 3), layers=4)
    fig = units.selu_statistics(frame)
    mean_ax, std_ax = fig.axes[0], fig.axes[1]
    assert "mean" in mean_ax.get_ylabel() and "std" in std_ax.get_ylabel()
    np.testing.assert_allclose(lines(mean_ax)["relu"].get_ydata(), 0.5 ** np.arange(4))
    np.testing.assert_allclose(lines(std_ax)["relu"].get_ydata(), 0.7 ** np.arange(4))
    np.testing.assert_allclose(lines(std_ax)["selu"].get_ydata(), np.ones(4))
    assert std_ax.get_yscale() == "log" and mean_ax.get_yscale() == "linear"
    later = units.selu_statistics(frame, step=3)
    np.testing.assert_allclose(lines(later.axes[1])["relu"].get_ydata(), 4 * 0.7 ** np.arange(4))
    assert fig.get_figwidth() == pytest.approx(figures.SINGLE_COLUMN)
    with pytest.raises(NoData):
        units.selu_statistics(frame, step=99)


# ---------------------------------------------------------------------------------------
# Theory against measurement.

def _theory() -> pd.DataFrame:
    rows = []
    for act, chi in (("tanh", 0.8), ("relu", 0.5)):
        for sigma in (0.5, 1.0, 2.0):
            for seed in (0, 1):
                rows.append({"activation": act, "sigma_w2": sigma, "predicted_factor": math.sqrt(chi * sigma),
                             "measured_factor": math.sqrt(chi * sigma) * (1.05 if seed else 0.97)})
    return pd.DataFrame(rows)


def test_theory_vs_measurement_side_by_side_and_against_identity():
    theory = _theory()
    fig = theory_figures.theory_vs_measurement(theory)
    left, right = fig.axes[0], fig.axes[1]
    for act in ("tanh", "relu"):
        rows = theory[theory["activation"] == act]
        points = lines(right)[act]
        np.testing.assert_allclose(points.get_xdata(), rows["predicted_factor"])
        np.testing.assert_allclose(points.get_ydata(), rows["measured_factor"])
        per_x = rows.groupby("sigma_w2")[["predicted_factor", "measured_factor"]].mean()
        np.testing.assert_allclose(lines(left)[f"{act} predicted"].get_ydata(), per_x["predicted_factor"])
        np.testing.assert_allclose(lines(left)[f"{act} measured"].get_ydata(), per_x["measured_factor"])
    identity = lines(right)["identity"]
    np.testing.assert_allclose(identity.get_xdata(), identity.get_ydata())
    values = np.concatenate([theory["predicted_factor"], theory["measured_factor"]])
    assert identity.get_xdata()[0] <= values.min() and identity.get_xdata()[-1] >= values.max()
    assert right.get_xscale() == right.get_yscale() == left.get_yscale() == "log"
    assert "sigma" in left.get_xlabel() and "predicted" in right.get_xlabel() and "measured" in right.get_ylabel()


def test_theory_vs_measurement_accepts_gain_and_rejects_bad_tables():
    fig = theory_figures.theory_vs_measurement(_theory().rename(columns={"sigma_w2": "gain"}))
    assert "gain" in fig.axes[0].get_xlabel()
    with pytest.raises(NoData):
        theory_figures.theory_vs_measurement(_theory().iloc[0:0])
    # With a study column only the meanfield rows are drawn (by default).
    mixed = pd.concat([_theory().assign(study="meanfield"),
                       _theory().assign(study="selu", activation="selu")], ignore_index=True)
    assert set(lines(theory_figures.theory_vs_measurement(mixed).axes[1])) == {"tanh", "relu", "identity"}
    assert "selu" in lines(theory_figures.theory_vs_measurement(mixed, study=None).axes[1])
    with pytest.raises(NoData, match="meanfield"):
        theory_figures.theory_vs_measurement(mixed[mixed["study"] == "selu"])
    with pytest.raises(ValueError, match="measured_factor"):
        theory_figures.theory_vs_measurement(_theory().drop(columns="measured_factor"))


def test_theory_beyond_meanfield_draws_each_theory_against_identity():
    table = pd.DataFrame([
        {"theory": "batchnorm_mlp", "activation": "relu", "predicted_factor": 1.211, "measured_factor": 1.18},
        {"theory": "batchnorm_mlp", "activation": "tanh", "predicted_factor": 1.085, "measured_factor": 1.09},
        {"theory": "residual_mlp", "activation": "relu", "predicted_factor": 1.08, "measured_factor": 1.07},
        {"theory": "rnn_time", "activation": "tanh", "predicted_factor": 0.57, "measured_factor": 0.55},
        {"theory": "meanfield_mlp", "activation": "tanh", "predicted_factor": 0.2, "measured_factor": 0.21},
    ])
    fig = theory_figures.theory_beyond_meanfield(table)
    drawn = lines(fig.axes[0])
    assert set(drawn) == {"batchnorm_mlp relu", "batchnorm_mlp tanh", "residual_mlp relu", "rnn_time tanh", "identity"}
    np.testing.assert_allclose(drawn["rnn_time tanh"].get_xdata(), [0.57])
    np.testing.assert_allclose(drawn["rnn_time tanh"].get_ydata(), [0.55])
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "batch norm MLP: n=2, error median" in legend and "meanfield" not in legend
    with pytest.raises(NoData):
        theory_figures.theory_beyond_meanfield(table[table["theory"] == "meanfield_mlp"])


# ---------------------------------------------------------------------------------------
# Every figure: empty input, style, saving.

DATA_PARAMETERS = ("runs", "layers", "timesteps", "steps", "theory")
REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "paper"
FIGURE_PACKAGE = REPO / "src" / "gradatlas" / "analysis" / "figures"


def specs_defined_in_the_package() -> list[figures.FigureSpec]:
    """Every spec any module of the package defines, read module by module (not via SECTIONS)."""
    import importlib

    found = []
    for path in sorted(FIGURE_PACKAGE.glob("*.py")):
        if path.stem not in ("__init__", "__main__"):
            found += registry.module_specs(importlib.import_module(f"gradatlas.analysis.figures.{path.stem}"))
    return found


def test_the_registry_is_every_spec_of_the_package_once():
    defined = specs_defined_in_the_package()
    assert sorted(s.name for s in defined) == sorted(FIGURES), "a section module is missing from registry.SECTIONS"
    assert list(figures.FIGURE_NAMES) == list(FIGURES)
    for name, spec in FIGURES.items():
        assert spec.draw.__name__ == name and spec.draw.__doc__
        assert spec.section in registry.SECTIONS
        wanted = [p for p in inspect.signature(spec.draw).parameters if p in DATA_PARAMETERS]
        # A figure drawn from data names the studies it draws; one of closed forms names none.
        assert bool(wanted) == bool(spec.studies), name


def test_figure_studies_are_studies_of_the_workflow():
    studies = {p.stem for p in (REPO / "conf" / "studies").glob("*.yaml")}
    drawn = registry.figure_studies()
    assert set(drawn) == set(FIGURES)
    for name, named in drawn.items():
        assert set(named) <= studies, f"{name} names unknown studies {set(named) - studies}"


def test_the_registry_keeps_the_order_of_the_caption_macros():
    # numbers.tex holds one caption macro per figure in registry order; the archived full scale
    # rebuilds it byte for byte, so the order is part of the contract.
    assert list(FIGURES) == [
        "activation_gallery", "backprop_norm_vs_layer", "accuracy_heatmap", "backprop_over_training", "normalization_effect",
        "residual_vs_plain", "hidden_grad_vs_distance", "clipping", "dead_units_vs_lr", "prelu_slope",
        "selu_statistics", "theory_vs_measurement", "theory_beyond_meanfield", "recurrent_gain_factor",
        "fluctuation_vs_beta", "norm_rate_vs_batch", "jacobian_spectra", "gradient_correlation_vs_depth",
        "threshold_sensitivity", "claims_forest", "criticality_phase", "trainable_depth_phase",
        "weight_crossing", "saturation_during_training"]


def test_a_duplicate_figure_name_and_a_bad_width_are_refused():
    with pytest.raises(ValueError, match="figure width"):
        figures.spec.figure(width=5.0, report="r", caption="c")
    with pytest.raises(ValueError, match="one non-empty line"):
        figures.spec.figure(width=figures.SINGLE_COLUMN, report="two\nlines", caption="c")
    with pytest.raises(ValueError, match="'dead_units_vs_lr' is defined in units and units"):
        registry.collect(("units", "units"))


def test_every_figure_is_printed_at_the_width_it_is_drawn():
    import re

    sources = "\n".join(p.read_text() for p in sorted((PAPER / "sections").glob("*.tex")))
    floats = re.findall(r"\\begin\{(figure\*?)\}(.*?)\\end\{figure\*?\}", sources, flags=re.S)
    placed = {}
    for env, body in floats:
        for options, name in re.findall(r"\\includegraphics(\[[^]]*\])?\{figures/([a-z_]+)\.pdf\}", body):
            assert not options, f"{name} is scaled in the paper ({options}): draw it at its print width instead"
            placed[name] = env
    assert set(placed) == set(FIGURES)
    for name, env in placed.items():
        assert FIGURES[name].float_env == env, name
    # draw() applies the width: a two-panel figure in a figure* float is drawn full width.
    fig = output.draw("hidden_grad_vs_distance", timesteps=_timestep_frame())
    assert fig.get_figwidth() == pytest.approx(figures.DOUBLE_COLUMN)
    assert output.draw("residual_vs_plain", runs=pd.DataFrame()).get_figwidth() <= figures.SINGLE_COLUMN


def test_captions_name_only_what_the_data_holds():
    timesteps = _timestep_frame()
    assert set(timesteps["data"]) == {"adding"}
    captions = figures.captions(pd.DataFrame(), pd.DataFrame(), timesteps)
    assert list(captions) == list(FIGURES)
    assert "adding problem" in captions["hidden_grad_vs_distance"]
    assert "copy" not in captions["hidden_grad_vs_distance"]
    with_copy = pd.concat([timesteps, timesteps.assign(data="copy", run=timesteps["run"].astype(str) + "c")])
    assert "copy task" in figures.captions(pd.DataFrame(), pd.DataFrame(), with_copy)["hidden_grad_vs_distance"]
    sections = "\n".join(p.read_text() for p in (PAPER / "sections").glob("*.tex"))
    for name in FIGURES:  # the paper prints the generated caption, not a hand-written one
        assert r"\caption{\GACaption" + name.title().replace("_", "") + "}" in sections


def test_the_committed_report_captions_are_the_registrys(tmp_path):
    # rules/paper.smk captions each figure of the report with report/figures/<name>.rst, written
    # from the specs by `python -m gradatlas.analysis.figures captions`.
    committed = REPO / "report" / "figures"
    assert stale_captions(committed) == [], "run python -m gradatlas.analysis.figures captions"
    assert {p.name: p.read_text() for p in committed.glob("*.rst")} == registry.report_captions()
    # The check fails on an edited, a missing and an extra file, and writing repairs all three.
    copy = tmp_path / "figures"
    write_captions(copy)
    (copy / "clipping.rst").write_text("hand-edited\n")
    (copy / "prelu_slope.rst").unlink()
    (copy / "retired.rst").write_text("a figure no longer registered\n")
    assert stale_captions(copy) == ["clipping.rst", "prelu_slope.rst", "retired.rst"]
    command = [sys.executable, "-m", "gradatlas.analysis.figures", "captions", "--check", "--dir", str(copy)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "clipping.rst" in done.stderr
    assert write_captions(copy) == ["clipping.rst", "prelu_slope.rst", "retired.rst"]
    assert stale_captions(copy) == [] and (copy / "prelu_slope.rst").read_text() == FIGURES["prelu_slope"].report + "\n"


HEAVY_MODULES = ("matplotlib", "seaborn", "torch")


def test_the_registry_imports_neither_matplotlib_seaborn_nor_torch():
    # What the workflow imports while it parses (rules/common.smk) and what the claim index reads.
    probe = ("import sys\n"
             "from gradatlas.analysis.figures.registry import FIGURES, report_captions\n"
             "from gradatlas.analysis import claim_index\n"
             "report_captions(); claim_index.study_claims\n"
             f"print(len(FIGURES), sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY_MODULES!r}))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    count, loaded = done.stdout.split(" ", 1)
    assert int(count) == len(FIGURES) > 0  # the sections were imported, specs and all
    assert loaded.strip() == "[]"
    # The probe can fail: what draws and saves a figure loads matplotlib.
    drawing = probe.replace("report_captions()", "from gradatlas.analysis.figures import output; report_captions()")
    done = subprocess.run([sys.executable, "-c", drawing], capture_output=True, text=True, timeout=120, check=True)
    assert "'matplotlib'" in done.stdout and "'seaborn'" in done.stdout


@pytest.mark.parametrize("name", [n for n in FIGURES if n != "activation_gallery"])
def test_every_data_figure_raises_no_data_on_empty_tables(name):
    function = FIGURES[name].draw
    kwargs = {p: pd.DataFrame() for p in inspect.signature(function).parameters if p in DATA_PARAMETERS}
    with pytest.raises(NoData):
        function(**kwargs)


def test_figures_leave_global_rcparams_alone_and_inputs_unchanged():
    before = dict(mpl.rcParams)
    runs, layers = _norm_frames()
    copy = layers.copy()
    normalization.normalization_effect(runs, layers)
    assert dict(mpl.rcParams) == before
    pd.testing.assert_frame_equal(layers, copy)
    assert mpl.get_backend().lower() == "agg"


def test_no_data_figure_says_why():
    fig = output.no_data_figure("clipping", "no rows for study 'clipping_mlp'")
    texts = " ".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert "clipping" in texts and "clipping_mlp" in texts


def test_save_figure_writes_pdf_with_truetype_fonts(tmp_path):
    fig = theory_figures.theory_vs_measurement(_theory())  # text, mathtext and a legend
    with mpl.rc_context({"pdf.fonttype": 3}):  # a caller's Type 3 setting must not leak in
        path = output.save_figure(fig, tmp_path / "sub" / "theory.pdf")
    data = path.read_bytes()
    assert data.startswith(b"%PDF")
    assert b"/Subtype /Type3" not in data and b"/Type3" not in data
    assert b"/FontFile2" in data  # embedded TrueType (Type 42)
    assert not list(path.parent.glob(".*tmp*"))  # the temporary file is gone
    # Same figure, same bytes: no creation date in the file.
    again = output.save_figure(fig, tmp_path / "again.pdf")
    assert again.read_bytes() == data
    if shutil.which("pdffonts"):
        report = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
        fonts = report.splitlines()[2:]
        assert fonts and all("Type 3" not in line for line in fonts)
        assert all("TrueType" in line for line in fonts)


def test_plotted_points_counts_data_not_reference_lines_or_text():
    from figure_helpers import plotted_points

    assert plotted_points(output.no_data_figure("clipping", "no rows")) == 0
    fig = Figure()
    ax = fig.subplots()
    ax.axhline(1.0, label="_target")  # axes coordinates in x: a reference line
    ax.plot([0.1, 10.0], [0.1, 10.0], label="identity")
    ax.plot([], [], label="empty")
    ax.text(0.5, 0.5, "a note")
    assert plotted_points(fig) == 0
    ax.plot([0.0, 1.0, 2.0], [1.0, np.nan, 3.0], label="data")  # the NaN point is not drawn
    assert plotted_points(fig) == 2
    ax.bar([0, 1], [0.0, 0.5])  # a share of 0 is a bar too
    ax.scatter([1.0], [2.0])
    assert plotted_points(fig) == 5
    heat = Figure().subplots()
    mesh = heat.pcolormesh(np.array([[1.0, np.nan], [2.0, 3.0]]))
    heat.figure.colorbar(mesh, ax=heat)  # the colour scale is not data
    assert plotted_points(heat.figure) == 3


def test_a_heatmap_writes_a_number_vertically_only_where_its_column_is_too_narrow():
    from matplotlib.colors import Normalize

    from gradatlas.analysis.figures import plot, style

    # The column of 1.05 (between 1 and 1.1) is a point wide on a log axis from 0.01 to 100; the others are wide.
    xs = np.array([0.01, 1.0, 1.05, 1.1, 100.0])
    fig, axes = style.figure(1, 1, 3.0, row_height=1.5)
    ax = axes[0, 0]
    plot.cell_heatmap(ax, xs, np.array([1.0]), np.full((1, len(xs)), 0.42), norm=Normalize(0, 1), cmap="viridis",
                      text=lambda v: f"{round(100 * v):d}", xlog=True)
    rotations = {round(float(t.get_position()[0]), 2): t.get_rotation() for t in ax.texts}
    assert rotations == {0.01: 0.0, 1.0: 0.0, 1.05: 90.0, 1.1: 0.0, 100.0: 0.0}
    assert {t.get_text() for t in ax.texts} == {"42"}

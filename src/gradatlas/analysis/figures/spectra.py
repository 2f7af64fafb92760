"""Jacobian spectra at initialization (study isometry): the spread of the squared singular
values of dh_l/dh_0 over depth against free probability."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd

from gradatlas.analysis.figures import levels
from gradatlas.analysis.figures.spec import DOUBLE_COLUMN, NoData, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STUDY = "isometry"
# Panels: the critical gain of each activation (the claim's cases), and the other gain.
CRITICAL_GAIN = {"linear": 1.0, "tanh": 1.0, "relu": float(np.sqrt(2.0))}
INIT_STYLE = {"lecun_normal": ("-", "o", "Gaussian"), "orthogonal": ("--", "s", "orthogonal")}
# Below this the symmetric-log axis is linear: orthogonal linear nets sit at ~1e-13.
LINEAR_BELOW = 0.01


def _spectra(runs: pd.DataFrame, layers: pd.DataFrame) -> pd.DataFrame:
    from gradatlas.analysis import theory  # torch-backed quadrature: not at registry import

    chosen = levels.study_rows(runs, STUDY)
    if chosen.empty or layers is None or layers.empty:
        return pd.DataFrame(columns=["run"])
    return theory.spectra_table(chosen, layers[layers["run"].astype(str).isin(set(chosen["run"].astype(str)))])


def _seed_range(seeds: pd.Series) -> str:
    low, high = levels.fmt(seeds.min()), levels.fmt(seeds.max())
    return low if low == high else f"{low}--{high}"


def spectra_caption(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> str:
    """The paper's caption of ``jacobian_spectra``: width, deepest depth and seeds drawn."""
    table = _spectra(runs, layers)
    if table.empty:
        return "Spread of the Jacobian spectrum over depth: no \\texttt{isometry} runs at this scale."
    seeds = table.groupby(["init", "activation", "gain"], observed=True)["seed"].nunique()
    return ("Spread $\\mathrm{Var}(\\lambda)/\\mathrm{E}(\\lambda)^2$ of the squared singular values $\\lambda$ of "
            "the hidden-to-hidden Jacobian $\\partial h_l/\\partial h_0$ at initialization against its depth $l$ "
            f"(study \\texttt{{isometry}}, width {levels.fmt(table['width'].max())}, depths up to "
            f"{levels.fmt(table['jacobian_depth'].max())}, {_seed_range(seeds)} seeds "
            "per case; markers: mean over seeds of each input's value averaged over inputs; lines: free probability, "
            "the length map iterated from the measured first layer). Left: each activation at its critical gain "
            "(1 for linear and tanh, $\\sqrt 2$ for ReLU); right: the other gain. Symmetric-log axis, linear below "
            f"{LINEAR_BELOW:g}.")


@figure(width=DOUBLE_COLUMN, studies=(STUDY,), caption=spectra_caption,
        report="Spread Var/E^2 of the squared singular values of the hidden-to-hidden Jacobian at initialization "
               "against depth, Gaussian and orthogonal weights, linear, tanh and ReLU, at the critical gain (left) and "
               "the other gain (right): measured (markers) against free probability (lines); study isometry.")
def jacobian_spectra(runs: pd.DataFrame, layers: pd.DataFrame, *, width: Optional[float] = DOUBLE_COLUMN) -> Figure:
    """Var/E^2 of the squared singular values against the Jacobian's depth, per init and
    activation, measured (mean over seeds) and predicted; one panel per gain kind."""
    from gradatlas.analysis.figures import style

    table = _spectra(runs, layers)
    if table.empty:
        raise NoData("jacobian_spectra: no isometry runs with jacobian_sv2 rows")
    table = table.assign(critical=[np.isclose(g, CRITICAL_GAIN.get(a, np.nan))
                                   for a, g in zip(table["activation"], table["gain"].astype(float))])
    acts = levels.order("activation", table["activation"].unique())
    fig, axes = style.figure(1, 2, width, row_height=2.3)
    for ax, critical, title in zip(axes[0], (True, False), ("critical gain", "other gain")):
        part = table[table["critical"] == critical]
        for (init, act, gain), rows in part.groupby(["init", "activation", "gain"], observed=True, sort=True):
            linestyle, marker, _ = INIT_STYLE.get(init, (":", "x", init))
            color = style.color("activation", act, acts)
            mean = rows.groupby("jacobian_depth")[["normalized_variance", "predicted_normalized_variance"]].mean()
            ax.plot(mean.index, mean["predicted_normalized_variance"], color=color, linestyle=linestyle, linewidth=1.0)
            ax.plot(mean.index, mean["normalized_variance"], color=color, marker=marker, linestyle="none",
                    markersize=3.5, markerfacecolor="none" if init == "orthogonal" else color)
        ax.set_xscale("log", base=2)
        ax.set_yscale("symlog", linthresh=LINEAR_BELOW)
        ax.set_ylim(bottom=0.0)
        ax.set_xlabel(r"Jacobian depth $l$")
        ax.set_title(title)
        if part.empty:
            style.note(ax, "no runs")
    axes[0][0].set_ylabel(r"$\mathrm{Var}(\lambda)/\mathrm{E}(\lambda)^2$")
    handles = [style.line_handle(str(a), style.color("activation", a, acts)) for a in acts]
    handles += [style.line_handle(label, "0.3", ls, mk) for ls, mk, label in INIT_STYLE.values()]
    style.fig_legend(fig, handles, ncol=5)
    return fig

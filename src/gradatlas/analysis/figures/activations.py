"""The activations themselves: each function and its derivative, from closed forms (no data)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional, Sequence

from gradatlas.analysis.figures.spec import DOUBLE_COLUMN, NoData, figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def gallery_names() -> list[str]:
    """Every registered activation once (aliases such as swish = silu dropped)."""
    from gradatlas.run import activations  # torch: only when the gallery is drawn

    seen: set[object] = set()
    names = []
    for name, constructor in activations.ACTIVATIONS.items():
        if constructor not in seen:
            seen.add(constructor)
            names.append(name)
    return names


@figure(width=DOUBLE_COLUMN,
        report="Each activation (solid) and its closed-form derivative (dashed); the derivative bounds how "
               "much a layer can pass back.",
        caption="The activations (solid) and their derivatives (dashed).")
def activation_gallery(names: Optional[Sequence[str]] = None, *, z_min: float = -3.0, z_max: float = 3.0,
                       points: int = 601, ncols: int = 4, width: Optional[float] = DOUBLE_COLUMN) -> Figure:
    """Each activation phi (solid) and its closed-form derivative phi' (dashed), one panel each.

    Computed from ``gradatlas.run.activations`` (``forward`` and ``derivative``) on a grid of
    ``points`` values of z in [z_min, z_max]; a dotted line marks phi' = 1, the slope that
    passes a gradient back unchanged. Needs no data.
    """
    import seaborn as sns
    import torch

    from gradatlas.analysis.figures import style
    from gradatlas.run import activations

    names = list(names) if names is not None else gallery_names()
    if not names:
        raise NoData("activation_gallery: no activations to draw")
    nrows = math.ceil(len(names) / ncols)
    fig, axes = style.figure(nrows, ncols, width, row_height=1.2, sharex=True, sharey=True)
    z = torch.linspace(z_min, z_max, points, dtype=torch.float64)
    palette = sns.color_palette(style.PALETTE)
    for ax, name in zip(axes.flat, names):
        module = activations.make_activation(name).to(torch.float64)
        with torch.no_grad():
            value = module(z).numpy()
            slope = module.derivative(z).numpy()
        ax.axhline(0.0, color="0.85", linewidth=0.6, zorder=0, label="_zero")
        ax.axhline(1.0, color="0.6", linewidth=0.6, linestyle=":", zorder=0, label="_unit slope")
        ax.plot(z.numpy(), value, color=palette[0], label="activation φ(z)")
        ax.plot(z.numpy(), slope, color=palette[1], linestyle="--", label="derivative φ′(z)")
        ax.set_title(name)
    for ax in axes.flat[len(names):]:
        ax.set_axis_off()
    for ax in axes[-1]:
        ax.set_xlabel("z")
    style.fig_legend(fig, [style.line_handle("activation φ(z)", palette[0]),
                           style.line_handle("derivative φ′(z)", palette[1], "--"),
                           style.line_handle("φ′ = 1", "0.6", ":")])
    return fig


"""The figures, collected from their specs: each section module's ``@figure`` functions.

``SECTIONS`` lists the section modules once, in the order their figures are drawn and their
caption macros written (``numbers.tex``); within a section, in the order they are defined.
Everything here is light (no matplotlib, seaborn or torch): the workflow reads ``FIGURE_NAMES``
while it parses, the claim index reads each figure's studies, ``python -m
gradatlas.analysis.figures captions`` writes the report's captions.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pandas as pd

from gradatlas.analysis.figures.spec import FigureSpec

SECTIONS = ("activations", "depth", "normalization", "residual", "recurrent", "exploding", "units", "theory",
            "initialization", "spectra", "shattered", "protocol",
            "criticality", "saturation")


def module_specs(module: ModuleType) -> list[FigureSpec]:
    """The specs of the figures ``module`` defines, in definition order (not those it imports)."""
    section = module.__name__.rpartition(".")[2]
    found = [getattr(value, "spec", None) for value in vars(module).values()]
    return [spec for spec in found if isinstance(spec, FigureSpec) and spec.section == section]


def collect(sections: tuple[str, ...] = SECTIONS) -> dict[str, FigureSpec]:
    """Figure name -> spec over ``sections``.

    Raises:
        ValueError: when two figures share a name.
    """
    figures: dict[str, FigureSpec] = {}
    for section in sections:
        for spec in module_specs(importlib.import_module(f"{__package__}.{section}")):
            if spec.name in figures:
                raise ValueError(f"figure {spec.name!r} is defined in {figures[spec.name].section} and {section}")
            figures[spec.name] = spec
    return figures


FIGURES: dict[str, FigureSpec] = collect()
FIGURE_NAMES: tuple[str, ...] = tuple(FIGURES)


def captions(runs: pd.DataFrame, layers: pd.DataFrame, timesteps: pd.DataFrame) -> dict[str, str]:
    """The paper's caption of every figure (LaTeX source), naming only what the tables hold."""
    return {name: spec.caption_for(runs, layers, timesteps) for name, spec in FIGURES.items()}


def report_captions() -> dict[str, str]:
    """The Snakemake report's caption file of every figure: ``<name>.rst`` -> its text."""
    return {f"{name}.rst": spec.report + "\n" for name, spec in FIGURES.items()}


def figure_studies() -> dict[str, tuple[str, ...]]:
    """The studies each figure draws (none for a figure of closed forms)."""
    return {name: spec.studies for name, spec in FIGURES.items()}

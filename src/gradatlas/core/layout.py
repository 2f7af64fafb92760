"""The results layout, defined once: where every product of a scale lives, and the names of
the files and columns of a run record.

``<results>/<scale>/`` holds ``runs/`` (one record per run), ``batches/<study>/<part>-<i>.json``
(the manifests of the training jobs), ``tuning/<study>.json``, ``summary/<table>.parquet``,
``analysis/``, ``tables/``, ``figures/``, ``numbers.tex``, ``logs/`` and ``paper.pdf``. A scale
archived in the repository lives in ``<repo>/results/<scale>/archive/`` whatever the root.
The Snakemake rules, the batch job, the archive and the analysis all take their paths from
here.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gradatlas.core.files import TargetError, read_table

# conf/ sits at the repository root (docs/design.md); GRADATLAS_CONF points elsewhere if needed.
CONF_DIR = Path(os.environ.get("GRADATLAS_CONF", Path(__file__).resolve().parents[3] / "conf"))

# The files of a run record (gradatlas.run.records writes, checks and reads them).
CONFIG_FILE = "config.yaml"
INFO_FILE = "run.json"
STEPS_FILE = "steps.parquet"
LAYERS_FILE = "layers.parquet"
TIMESTEPS_FILE = "timesteps.parquet"
RECORD_FILES = (CONFIG_FILE, INFO_FILE, STEPS_FILE, LAYERS_FILE, TIMESTEPS_FILE)
TABLE_FILES = (STEPS_FILE, LAYERS_FILE, TIMESTEPS_FILE)

STEP_COLUMNS = ("step", "epoch", "loss", "grad_norm", "clipped", "lr", "test_loss", "test_metric")
LAYER_COLUMNS = ("step", "layer", "name", "quantity", "value")
TIMESTEP_COLUMNS = ("step", "t", "quantity", "value")

# The aggregated tables of a scale (gradatlas.workflow.aggregate): everything the analysis reads.
SUMMARY_TABLES = ("runs", "layers", "timesteps", "steps")
# The parts of a study's training jobs: its batches, and a tuned study's sweeps before them.
JOB_PARTS = ("batch", "sweep")
MANIFEST = "manifest.json"  # an archive's manifest (gradatlas.workflow.archive)

# A path component the workflow may use in a record path: letters, digits and ``_.+-``.
PLAIN_TOKEN = re.compile(r"[A-Za-z0-9_.+-]{1,64}")
# A study's name (its file's stem) reaches record paths, job names and command lines.
STUDY_NAME = re.compile(r"[A-Za-z0-9_]+")


def study_name(path: str | os.PathLike) -> str:
    """A study's name: its file's stem, which must match ``STUDY_NAME`` (it becomes part of
    record paths, job names and command lines). Needs neither torch nor Hydra, so that the
    workflow checks every study file's name on each parse.

    Raises:
        ValueError: naming the file.
    """
    name = Path(path).stem
    if not STUDY_NAME.fullmatch(name):
        raise ValueError(f"{path}: a study's file name must be letters, digits and _ only "
                         f"([A-Za-z0-9_]+ before .yaml), got {name!r}")
    return name


def path_token(text: str) -> str:
    """``text`` if it is a plain path component (``PLAIN_TOKEN``), else ``h`` + 12 hex digits
    of its SHA-256: a value becomes part of a record path only in this form."""
    if PLAIN_TOKEN.fullmatch(text) and text not in (".", ".."):
        return text
    return "h" + hashlib.sha256(text.encode()).hexdigest()[:12]


def run_dir(results: str | os.PathLike, scale: str, relpath: str) -> Path:
    """``<results>/<scale>/runs/<relpath>``, refusing a component that is not a plain token
    (so that no study can place a record outside ``<results>/<scale>/runs``)."""
    parts = [scale, *relpath.split("/")]
    bad = [part for part in parts if path_token(part) != part]
    if bad:
        raise TargetError(f"record path {relpath!r} at scale {scale!r}: component(s) {bad} are not plain "
                          "tokens (letters, digits, _.+-)")
    return Path(results) / scale / "runs" / relpath


def archive_dir(scale: str, repo: str | os.PathLike = ".") -> Path:
    """Where a scale's archive lives: in the repository, whatever ``results`` root a run uses."""
    return Path(repo) / "results" / path_token(scale) / "archive"


@dataclass(frozen=True)
class ScalePaths:
    """Where the products of one scale live: ``<results>/<scale>/...``."""

    results: str | os.PathLike
    scale: str

    @classmethod
    def of_root(cls, root: str | os.PathLike) -> "ScalePaths":
        """The paths of the scale whose root is ``<results>/<scale>``."""
        root = Path(root)
        return cls(root.parent, root.name)

    @classmethod
    def of_manifest(cls, manifest: str | os.PathLike) -> "ScalePaths":
        """The paths of the scale a batch manifest (``batch_manifest``) belongs to."""
        # absolute(), not resolve(): a linked batches/ (or a linked manifest) must not move the
        # scale's root to wherever the link points.
        return cls.of_root(Path(manifest).absolute().parents[2])

    @property
    def root(self) -> Path:
        """``<results>/<scale>``."""
        return Path(self.results) / self.scale

    @property
    def runs(self) -> Path:
        """The run records."""
        return self.root / "runs"

    def batch_manifest(self, study: str, part: str, index: int | str) -> Path:
        """The manifest of one training job: ``batches/<study>/<part>-<index>.json``."""
        return self.root / "batches" / study / f"{part}-{index}.json"

    def train_log(self, study: str, part: str, index: int | str) -> Path:
        """The log of one training job."""
        return self.root / "logs" / "train" / study / f"{part}-{index}.log"

    def tuning(self, study: str) -> Path:
        """A tuned study's settings chosen per cell (gradatlas.workflow.tuning)."""
        return self.root / "tuning" / f"{study}.json"

    def log(self, name: str) -> Path:
        """The log of a job other than training (``logs/<name>.log``)."""
        return self.root / "logs" / f"{name}.log"

    def summary(self, name: str) -> Path:
        """An aggregated table: one of ``SUMMARY_TABLES``."""
        return self.root / "summary" / f"{name}.parquet"

    def analysis(self, name: str) -> Path:
        """A computed table (claims, theory)."""
        return self.root / "analysis" / f"{name}.parquet"

    def figure(self, name: str) -> Path:
        """A figure PDF."""
        return self.root / "figures" / f"{name}.pdf"

    def table(self, name: str) -> Path:
        """A LaTeX table."""
        return self.root / "tables" / f"{name}.tex"

    @property
    def numbers(self) -> Path:
        """The LaTeX macros of every number the paper quotes."""
        return self.root / "numbers.tex"

    @property
    def paper(self) -> Path:
        """The paper."""
        return self.root / "paper.pdf"

    def relative(self, path: str | os.PathLike) -> str:
        """``path`` relative to ``<results>/<scale>``: how a manifest names a record, so that a
        results directory that is copied or moved names its own records. Links are not followed
        (``runs/`` may be a link to another disk), and a path outside the root is refused.

        Raises:
            ValueError: ``path`` is not under ``<results>/<scale>``.
        """
        relative = Path(os.path.relpath(os.path.abspath(path), os.path.abspath(self.root)))
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"{path}: not under the scale's root {self.root}")
        return relative.as_posix()

    def resolve(self, relpath: str | os.PathLike) -> Path:
        """A path a manifest names relative to ``<results>/<scale>`` (``relative``)."""
        return self.root / relpath


def read_summary(paths: ScalePaths, layer_columns: tuple[str, ...] = ()
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The aggregated ``runs``, ``layers`` and ``timesteps`` tables of a scale; with
    ``layer_columns``, the layers table with only those (it has 5 million rows at full scale:
    all 33 columns take 7 s to read, six of them 1 s)."""
    layers = read_table(paths.summary("layers"), layer_columns, only=bool(layer_columns))
    return read_table(paths.summary("runs")), layers, read_table(paths.summary("timesteps"))


def read_steps(paths: ScalePaths) -> pd.DataFrame:
    """The summary's step tables (``aggregate.STEP_STUDIES``), long with a ``run`` column."""
    return read_table(paths.summary("steps"), ("run", *STEP_COLUMNS))

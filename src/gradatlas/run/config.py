"""Structured configuration of one run: dataclasses that reject bad values with a clear message.

Hydra composes ``conf/train.yaml`` and its groups; ``load_run_config`` merges the result into
``RunConfig`` so that a misspelt key, a wrong type or an out-of-range value fails before any
file is written. The names a config may use and ``FACTORS`` (the plain identifiers a study grid
varies, mapped to Hydra keys) live in ``gradatlas.core.names``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from gradatlas.core.names import (
    ACTIVATION_NAMES,
    CLIPS,
    DATA_NAMES,
    DEVICES,
    FACTORS,
    INIT_NAMES,
    MODEL_NAMES,
    NORMS,
    OPTIMIZERS,
    RECURRENT_MODELS,
    RNN_ACTIVATIONS,
    SEQUENCE_DATA,
)


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which and why."""


# Seeds go to numpy.random.seed, which takes 0 <= seed < 2**32.
SEED_LIMIT = 2**32
# scikit-learn's load_digits holds this many examples: data=digits splits them, never more.
DIGITS_EXAMPLES = 1797


def _key(section: str, key: str) -> str:
    return f"{section}.{key}" if section else key


def _choice(section: str, key: str, value: str, known: tuple[str, ...] | list[str]) -> None:
    if value not in known:
        raise ConfigError(f"{_key(section, key)}: unknown value {value!r}; known: {', '.join(known)}")


def _at_least(section: str, key: str, value: float, low: float) -> None:
    if value < low:
        raise ConfigError(f"{_key(section, key)} must be >= {low}, got {value}")


def _positive(section: str, key: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{_key(section, key)} must be > 0, got {value}")


def _seed(section: str, key: str, value: int) -> None:
    if not 0 <= value < SEED_LIMIT:
        raise ConfigError(f"{_key(section, key)} must be in [0, 2**32), got {value}")


def _finite(section: str, config: Any) -> None:
    # NaN compares false with every bound, and an infinite rate or gain would train into a
    # "diverged" record that looks like a physical result: no float may be either.
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{_key(section, item.name)} must be a finite number, got {value}")


@dataclass
class ModelConfig:
    """Architecture and its initialization.

    ``depth`` counts hidden layers for MLPs (residual blocks plus the stem for ``resmlp``)
    and stacked recurrent layers for ``rnn``/``gru``/``lstm``.
    """

    name: str = "mlp"
    depth: int = 10
    width: int = 128
    # mlp only: the width of every second hidden layer (1, 3, 5, ...; layer 0 has ``width``),
    # for nets of unequal widths; None: every hidden layer has ``width`` (``hidden_widths``).
    width_alt: Optional[int] = None
    activation: str = "relu"          # a vanilla rnn's: tanh or relu (gru and lstm use their gates)
    slope: Optional[float] = None     # negative slope of leaky_relu (0.01) / initial slope of prelu (0.25)
    # default: PyTorch's (for a recurrent model U(-1/sqrt(width), 1/sqrt(width)) for every weight)
    init: str = "default"
    init_gain: float = 1.0            # multiplies the initializer's standard deviation
    init_std: float = 0.01            # the std of init=normal (before the gain)
    bias_init: Optional[float] = None  # None: the initializer's convention (PyTorch's for default, else 0)
    # Feed-forward models only: biases drawn from N(0, bias_std^2) (mean field's sigma_b); None: bias_init's rule.
    bias_std: Optional[float] = None
    norm: str = "none"
    forget_bias: float = 1.0          # lstm only: forget-gate bias at initialization

    def __post_init__(self) -> None:
        _finite("model", self)
        _choice("model", "name", self.name, MODEL_NAMES)
        _at_least("model", "depth", self.depth, 1)
        _at_least("model", "width", self.width, 1)
        if self.width_alt is not None:
            _at_least("model", "width_alt", self.width_alt, 1)
            if self.name != "mlp":
                raise ConfigError(f"model.width_alt is only supported for model=mlp, got model={self.name}")
        _choice("model", "activation", self.activation, ACTIVATION_NAMES)
        _choice("model", "init", self.init, INIT_NAMES)
        _choice("model", "norm", self.norm, NORMS)
        _positive("model", "init_gain", self.init_gain)
        _positive("model", "init_std", self.init_std)
        if self.bias_std is not None:
            _at_least("model", "bias_std", self.bias_std, 0.0)
            if self.bias_init is not None:
                raise ConfigError("model.bias_std and model.bias_init are exclusive: set one of them")
            if self.name in RECURRENT_MODELS:
                raise ConfigError(f"model.bias_std is for feed-forward models, not {self.name}")
        if self.name in RECURRENT_MODELS:
            if self.name == "rnn":
                _choice("model", "activation (of a vanilla rnn)", self.activation, RNN_ACTIVATIONS)
            if self.norm != "none":
                raise ConfigError(f"model.norm={self.norm!r} is not supported for recurrent models; use none")


@dataclass
class DataConfig:
    """A locally generated (or, for ``digits``, shipped) data set. ``length`` is the sequence
    length of ``adding`` and the delay of ``copy``; ``mnist1d`` and ``mnist1d_seq`` always have
    40 features/steps, ``digits`` 64 features, and its ``n_train + n_test`` examples are drawn
    from its ``DIGITS_EXAMPLES``."""

    name: str = "mnist1d"
    length: int = 40
    n_train: int = 4000
    n_test: int = 1000
    # Held out from the end of the n_train training examples for learning-rate selection;
    # the model trains on the remaining n_train - n_val and the test split stays untouched.
    n_val: int = 0
    seed: int = 0
    copy_symbols: int = 5
    copy_alphabet: int = 8
    cache_dir: str = ".cache/gradatlas"

    def __post_init__(self) -> None:
        _finite("data", self)
        _choice("data", "name", self.name, DATA_NAMES)
        _at_least("data", "length", self.length, 1)
        if self.name == "adding":
            _at_least("data", "length (of the adding problem, which marks two steps)", self.length, 2)
        _at_least("data", "n_train", self.n_train, 1)
        _at_least("data", "n_test", self.n_test, 1)
        _at_least("data", "n_val", self.n_val, 0)
        if self.n_val >= self.n_train:
            raise ConfigError(f"data.n_val={self.n_val} must be below data.n_train={self.n_train}")
        if self.name == "digits" and self.n_train + self.n_test > DIGITS_EXAMPLES:
            raise ConfigError(f"data.n_train={self.n_train} + data.n_test={self.n_test} exceeds the "
                              f"{DIGITS_EXAMPLES} examples of data=digits")
        _at_least("data", "copy_symbols", self.copy_symbols, 1)
        _at_least("data", "copy_alphabet", self.copy_alphabet, 2)
        _seed("data", "seed", self.seed)


@dataclass
class OptimConfig:
    """Optimizer and its constant learning rate."""

    name: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.0             # sgd only
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        _finite("optim", self)
        _choice("optim", "name", self.name, OPTIMIZERS)
        _at_least("optim", "lr", self.lr, 0.0)
        # The heavy-ball buffer b <- momentum * b + g grows without bound from momentum 1 on.
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"optim.momentum must be in [0, 1), got {self.momentum}")
        _at_least("optim", "weight_decay", self.weight_decay, 0.0)


@dataclass
class TrainConfig:
    """Length of training, batching and gradient clipping (``clip_value`` is the max norm for
    ``clip=norm`` and the max absolute entry for ``clip=value``)."""

    epochs: int = 20
    max_steps: Optional[int] = None
    batch_size: int = 128
    clip: str = "none"
    clip_value: float = 1.0
    eval_every: int = 1

    def __post_init__(self) -> None:
        _finite("train", self)
        _at_least("train", "epochs", self.epochs, 1)
        if self.max_steps is not None:
            _at_least("train", "max_steps", self.max_steps, 1)
        _at_least("train", "batch_size", self.batch_size, 1)
        _choice("train", "clip", self.clip, CLIPS)
        _positive("train", "clip_value", self.clip_value)
        _at_least("train", "eval_every", self.eval_every, 1)


@dataclass
class ProbeConfig:
    """When to probe: every step below ``dense_until``, at powers of two up to ``log_until``,
    every ``every`` steps, and at the last step. ``enabled=false`` records no probes.

    The quantities measured on the probe set (a forward pass of ``PROBE_SET_SIZE`` examples:
    dead_frac, died_frac) are measured on fewer of those steps: step 0, the last step, and
    the probe steps that are multiples of ``probe_set_every``. The Jacobian spectrum
    (jacobian_sv2) is measured at step 0 only, on the first ``jacobian_inputs`` examples of
    the traced batch, and only where that is above 0 (the default: off)."""

    enabled: bool = True
    dense_until: int = 1
    log_until: int = 64
    every: int = 100
    # Dead units on the 1024-example probe set: step 0, the last step and the probe steps at
    # multiples of this (the probe set's forward pass is most of a probe's cost).
    probe_set_every: int = 500
    saturation: float = 0.1           # |phi'(z)| < saturation * sup|phi'| counts as saturated
    # Opt-in quantities (``OPT_IN_PROBES``): off unless a study turns them on. At their default
    # they are left out of config.yaml, the fingerprint and the rerun command, so the records
    # of configs that do not set them stay what they were.
    input_norms: bool = False         # input_sq_norm: each traced example's ||x||^2, at step 0
    input_grad_corr: bool = False     # input_grad_corr: correlation of input gradients along an arc, at step 0
    # Inputs of the traced batch whose hidden-to-hidden Jacobian spectrum is recorded at step 0
    # (quantity jacobian_sv2, an MLP without normalization only); 0 records none.
    jacobian_inputs: int = 0
    # Per-example backward gain statistics at step 0 (log_gain_mean, log_gain_var, gain_mean):
    # for studies of initialization; off, no run records them.
    backward_gain: bool = False

    def __post_init__(self) -> None:
        _finite("probe", self)
        _at_least("probe", "jacobian_inputs", self.jacobian_inputs, 0)
        _at_least("probe", "dense_until", self.dense_until, 0)
        _at_least("probe", "log_until", self.log_until, 0)
        _at_least("probe", "every", self.every, 1)
        _at_least("probe", "probe_set_every", self.probe_set_every, 1)
        if not 0 < self.saturation < 1:
            raise ConfigError(f"probe.saturation must be in (0, 1), got {self.saturation}")


@dataclass
class RunConfig:
    """Everything one training run needs; ``out`` is the run-record directory, which may
    hold a record of another config only with ``overwrite`` (records.check_target)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    seed: int = 0
    device: str = "auto"
    out: str = "results/manual/run"
    overwrite: bool = False

    def __post_init__(self) -> None:
        _seed("", "seed", self.seed)
        _choice("", "device", self.device, DEVICES)
        if not self.out:
            raise ConfigError("out must name the run-record directory")
        recurrent = self.model.name in RECURRENT_MODELS
        sequence = self.data.name in SEQUENCE_DATA
        if recurrent and not sequence:
            raise ConfigError(
                f"model={self.model.name} needs sequence data ({', '.join(sorted(SEQUENCE_DATA))}), "
                f"got data={self.data.name}"
            )
        if not recurrent and self.data.name == "copy":
            raise ConfigError(f"data=copy needs a recurrent model ({', '.join(sorted(RECURRENT_MODELS))})")
        if self.probe.jacobian_inputs:
            _jacobian_applies(self)
        trained_on = self.data.n_train - self.data.n_val
        if self.train.batch_size > trained_on:
            raise ConfigError(
                f"train.batch_size={self.train.batch_size} exceeds the training examples "
                f"(data.n_train={self.data.n_train} - data.n_val={self.data.n_val})"
            )


def _jacobian_applies(cfg: RunConfig) -> None:
    # jacobian_sv2 multiplies diag(phi'(z_l)) W_l layer by layer: the Jacobian of a plain MLP's
    # hidden layers, not that of a residual or normalized one.
    if cfg.model.name != "mlp" or cfg.model.norm != "none":
        raise ConfigError(f"probe.jacobian_inputs={cfg.probe.jacobian_inputs} needs model=mlp with norm=none, "
                          f"got model={cfg.model.name}, norm={cfg.model.norm}")
    if cfg.probe.jacobian_inputs > cfg.train.batch_size:
        raise ConfigError(f"probe.jacobian_inputs={cfg.probe.jacobian_inputs} exceeds the traced batch "
                          f"(train.batch_size={cfg.train.batch_size})")


def total_steps(cfg: RunConfig, n_train: int) -> int:
    """Number of optimizer steps: full batches per epoch times epochs, capped by max_steps."""
    steps = cfg.train.epochs * (n_train // cfg.train.batch_size)
    return min(steps, cfg.train.max_steps) if cfg.train.max_steps is not None else steps


# Keys added to the config after records were written, with the value every earlier config
# had: at that value a key is left out of the fingerprint, so that the records of configs
# that do not use it keep their fingerprint (and are reused, not retrained).
LATER_KEYS: dict[tuple[str, str], Any] = {
    ("model", "width_alt"): None,
    ("model", "bias_std"): None,
    ("probe", "backward_gain"): False,
    ("probe", "jacobian_inputs"): 0,
}


def hidden_widths(cfg: ModelConfig) -> list[int]:
    """The widths of an MLP's hidden layers, input side first (``width``, alternating with
    ``width_alt`` where that is set)."""
    alt = cfg.width if cfg.width_alt is None else cfg.width_alt
    return [alt if layer % 2 else cfg.width for layer in range(cfg.depth)]


def fingerprint(cfg: RunConfig) -> str:
    """A hash of everything that determines a run's outcome (not ``out``, ``overwrite`` nor
    ``device``; nor a key of ``LATER_KEYS`` at its earlier value)."""
    import hashlib
    import json

    content = to_container(cfg)
    content.pop("out", None)
    content.pop("overwrite", None)
    content.pop("device", None)
    content["data"].pop("cache_dir", None)
    for (section, key), earlier in LATER_KEYS.items():
        if content[section].get(key, earlier) == earlier:
            content[section].pop(key, None)
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def factor_values(cfg: RunConfig) -> dict[str, Any]:
    """The value of every factor in ``FACTORS`` for a run: the grid coordinates of its record."""
    container = to_container(cfg)

    def select(key: str) -> Any:
        node: Any = container
        for part in key.split("."):
            node = node[part]
        return node

    return {name: select(key) for name, key in FACTORS.items()}


def load_run_config(cfg: DictConfig | dict) -> RunConfig:
    """Validate a composed config against ``RunConfig`` and return the dataclass.

    Raises:
        ConfigError: for an unknown key, a wrong type or an invalid value.
    """
    if isinstance(cfg, DictConfig):
        # Plain containers (interpolations kept): a Hydra-composed config is typed as
        # RunConfig already, and merging it would let a key appended with +key=... through.
        cfg = OmegaConf.to_container(cfg, resolve=False)
    try:
        merged = OmegaConf.merge(_schema(), cfg)
        run = OmegaConf.to_object(merged)
    except ConfigError:
        raise
    except OmegaConfBaseException as err:
        # The cause carries our ConfigError when __post_init__ rejected a value.
        cause = err.__cause__ if isinstance(err.__cause__, ConfigError) else None
        raise ConfigError(str(cause) if cause else _first_line(err)) from err
    assert isinstance(run, RunConfig)
    return run


# The name under which ``register_schema`` stores ``RunConfig`` in Hydra's ConfigStore;
# ``conf/train.yaml``'s defaults list names it first.
SCHEMA_NAME = "run_schema"


@lru_cache(maxsize=1)
def register_schema() -> None:
    """Store ``RunConfig`` in Hydra's ConfigStore as ``SCHEMA_NAME``, once per process.

    ``conf/train.yaml`` composes onto it, so every group file lists only what differs from
    these dataclasses' defaults, and a key that is not a field (in a group file or an
    override) fails at composition, naming the key. Call it before composing ``train``
    (``hydra.compose`` or ``@hydra.main``); Hydra is imported here, not with this module,
    which torch-free tools import without composing.
    """
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=RunConfig)


@lru_cache(maxsize=1)
def _schema() -> DictConfig:
    # Built once: OmegaConf.structured walks the dataclasses (milliseconds per call), and
    # merge copies its first argument, so the cached schema is never modified.
    return OmegaConf.structured(RunConfig)


# Lines of Hydra's and OmegaConf's messages that say nothing about the input.
_NOISE = ("reference_type=", "object_type=", "Set the environment variable HYDRA_FULL_ERROR")


def composition_error(err: Exception) -> str:
    """Hydra's message of a failed composition on one line: where, the key (``full_key``)
    and, for a missing group option, the options there are."""
    text = str(err).split("Config search path")[0]  # then where Hydra looked: not the input's fault
    lines = [line.strip() for line in text.splitlines()]
    return "; ".join(line.rstrip(":") for line in lines if line and not line.startswith(_NOISE))


def _first_line(err: Exception) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines[:3])


# The probe switches of opt-in quantities (``ProbeConfig`` fields, False by default).
OPT_IN_PROBES = ("input_norms", "input_grad_corr")


def to_container(cfg: RunConfig) -> dict[str, Any]:
    """The resolved config as plain Python containers (for ``config.yaml``).

    A validated ``RunConfig`` holds only resolved primitives, so this is ``asdict``, less the
    ``OPT_IN_PROBES`` switches that are off (configs written before they existed keep their
    fingerprint; loading fills the default back in).
    """
    content = dataclasses.asdict(cfg)
    for name in OPT_IN_PROBES:
        if not content["probe"][name]:
            del content["probe"][name]
    return content


# Settings the members of a stack (``loop.train_stack``) may differ in: everything else shapes
# the computation (model kind and size, activation, norm, data, batching, step count, probe
# schedule, device) and must be shared.
MEMBER_SETTINGS = frozenset({
    "seed", "out", "overwrite",
    "model.init", "model.init_gain", "model.init_std", "model.bias_init", "model.bias_std",
    "model.forget_bias",
    "optim.lr", "optim.momentum", "optim.weight_decay",
    "train.clip", "train.clip_value",
})


def stack_key(cfg: RunConfig) -> str:
    """A digest of the settings that must be equal for runs to train as one stack (all but
    ``MEMBER_SETTINGS``; ``data.cache_dir`` neither, as it changes no value)."""
    import hashlib
    import json

    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif prefix not in MEMBER_SETTINGS and prefix != "data.cache_dir":
            flat[prefix] = value

    walk("", to_container(cfg))
    return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()[:16]

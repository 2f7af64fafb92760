"""The names a config may use and the grid factors, with no torch: the workflow parses
studies, the records are checked and the analysis labels its tables from these lists alone.

The registries that build things from names (``run.activations.ACTIVATIONS``,
``run.inits.INITIALIZERS``) are keyed by exactly these names; a test checks that they agree.
"""

from __future__ import annotations

MODEL_NAMES = ("mlp", "resmlp", "rnn", "gru", "lstm")
# Models whose record has a ``timesteps.parquet``.
RECURRENT_MODELS = frozenset({"rnn", "gru", "lstm"})
RNN_ACTIVATIONS = ("tanh", "relu")
ACTIVATION_NAMES = ("step", "step_ste", "linear", "sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "selu",
                    "silu", "swish", "gelu")
INIT_NAMES = ("default", "normal", "lecun_normal", "xavier_normal", "xavier_uniform", "he_normal",
              "he_uniform", "orthogonal")
NORMS = ("none", "batch", "layer")
DATA_NAMES = ("mnist1d", "mnist1d_seq", "digits", "adding", "copy")
SEQUENCE_DATA = frozenset({"mnist1d_seq", "adding", "copy"})
OPTIMIZERS = ("sgd", "adam")
CLIPS = ("none", "norm", "value")
DEVICES = ("auto", "cpu", "cuda")
STATUSES = ("ok", "diverged", "failed")

# Plain identifiers a study grid varies -> Hydra keys. The one place this mapping lives.
FACTORS: dict[str, str] = {
    "model": "model.name",
    "depth": "model.depth",
    "width": "model.width",
    "width_alt": "model.width_alt",
    "activation": "model.activation",
    "slope": "model.slope",
    "init": "model.init",
    "gain": "model.init_gain",
    "init_std": "model.init_std",
    "bias": "model.bias_init",
    "bias_std": "model.bias_std",
    "norm": "model.norm",
    "forget_bias": "model.forget_bias",
    "data": "data.name",
    "length": "data.length",
    "optimizer": "optim.name",
    "lr": "optim.lr",
    "momentum": "optim.momentum",
    "epochs": "train.epochs",
    "max_steps": "train.max_steps",
    "batch_size": "train.batch_size",
    "clip": "train.clip",
    "clip_value": "train.clip_value",
    "seed": "seed",
}

# Factors that choose a Hydra config group (so the group's defaults come along) rather
# than set one key: ``model=lstm`` loads conf/model/lstm.yaml.
GROUP_FACTORS: dict[str, str] = {"model": "model", "data": "data", "optimizer": "optim", "probe": "probe"}

"""Hydra composition of conf/ and validation by ``config.load_run_config``."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
import yaml
from conftest import compose, run_config
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from gradatlas.core import names
from gradatlas.core.layout import CONF_DIR
from gradatlas.run import activations, config, inits, runner
from gradatlas.run.config import ConfigError, RunConfig, load_run_config

GROUPS = ("model", "data", "optim", "probe")


def _group_files(group: str) -> list[Path]:
    return sorted((Path(CONF_DIR) / group).glob("*.yaml"))


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_conf_dir_is_the_repository_conf():
    assert (Path(CONF_DIR) / "train.yaml").is_file()
    for group in GROUPS:
        assert _group_files(group), group


def test_defaults_load_and_match_the_yaml_files(gradatlas_cache):
    cfg = load_run_config(compose())
    assert isinstance(cfg, RunConfig)
    train_yaml = _yaml(Path(CONF_DIR) / "train.yaml")
    defaults = {k: v for item in train_yaml["defaults"] if isinstance(item, dict) for k, v in item.items()}
    assert defaults["model"] == "mlp" and defaults["data"] == "mnist1d"
    for group in GROUPS:
        expected = _yaml(Path(CONF_DIR) / group / f"{defaults[group]}.yaml")
        actual = dataclasses.asdict(getattr(cfg, group))
        for key, value in expected.items():
            if key == "cache_dir":
                continue
            assert actual[key] == value, f"{group}.{key}"
    for key, value in train_yaml["train"].items():
        assert getattr(cfg.train, key) == value
    assert (cfg.seed, cfg.device, cfg.out) == (train_yaml["seed"], train_yaml["device"], train_yaml["out"])
    # The data cache follows GRADATLAS_CACHE (the session's private cache here).
    assert cfg.data.cache_dir == str(gradatlas_cache)


def test_dataclass_defaults_agree_with_yaml_defaults():
    # A RunConfig built without Hydra behaves like the composed default run.
    composed = config.to_container(load_run_config(compose()))
    plain = config.to_container(RunConfig())
    for section in (composed, plain):
        section["data"].pop("cache_dir")
        # DataConfig.length defaults to 50 (adding, copy); mnist1d.yaml says 40, its fixed
        # number of features, and the mnist1d data ignore the key.
        section["data"].pop("length")
    assert composed == plain


def _group_expected(group: str, path: Path) -> dict:
    """What a group option composes to: its section's dataclass defaults, then its file's keys."""
    default = {"model": config.ModelConfig, "data": config.DataConfig, "optim": config.OptimConfig,
               "probe": config.ProbeConfig}[group]()
    expected = {**dataclasses.asdict(default), **(_yaml(path) or {})}
    expected.pop("cache_dir", None)  # train.yaml's, from GRADATLAS_CACHE
    return expected


def _section(cfg: RunConfig, group: str) -> dict:
    section = dataclasses.asdict(getattr(cfg, group))
    section.pop("cache_dir", None)
    return section


@pytest.mark.parametrize("path", _group_files("model"), ids=lambda p: p.stem)
def test_every_model_group_composes(path):
    name = path.stem
    data = "adding" if name in names.RECURRENT_MODELS else "mnist1d"
    cfg = run_config([f"model={name}", f"data={data}"])
    assert cfg.model.name == name == _yaml(path)["name"]
    assert _section(cfg, "model") == _group_expected("model", path)


@pytest.mark.parametrize("path", _group_files("data"), ids=lambda p: p.stem)
def test_every_data_group_composes(path):
    name = path.stem
    model = "lstm" if name in names.SEQUENCE_DATA else "mlp"
    cfg = run_config([f"data={name}", f"model={model}"])
    assert cfg.data.name == name
    assert _section(cfg, "data") == _group_expected("data", path)


@pytest.mark.parametrize("group", ["optim", "probe"])
def test_every_optim_and_probe_group_composes(group):
    for path in _group_files(group):
        cfg = run_config([f"{group}={path.stem}"])
        assert _section(cfg, group) == _group_expected(group, path), path


def test_overrides_are_applied_with_types():
    cfg = run_config(["model.depth=7", "model.width=33", "optim.lr=0.125", "train.clip=norm",
                      "model.slope=0.2", "model.bias_init=-1", "train.max_steps=9", "seed=3"])
    assert (cfg.model.depth, cfg.model.width, cfg.optim.lr) == (7, 33, 0.125)
    assert (cfg.train.clip, cfg.model.slope, cfg.model.bias_init) == ("norm", 0.2, -1.0)
    assert isinstance(cfg.model.bias_init, float)
    assert (cfg.train.max_steps, cfg.seed) == (9, 3)


def test_load_run_config_accepts_a_plain_dict():
    cfg = load_run_config({"model": {"depth": 2, "activation": "tanh"}, "out": "x"})
    assert (cfg.model.depth, cfg.model.activation, cfg.model.width, cfg.out) == (2, "tanh", 128, "x")


def _known(values) -> list[str]:
    return list(values)


# (overrides, substrings the message must contain)
BAD = {
    "activation": (["model.activation=softsign"], ["model.activation", "softsign", *_known(activations.ACTIVATIONS)]),
    "init": (["model.init=glorot"], ["model.init", "glorot", *_known(inits.INITIALIZERS)]),
    "model": (["model.name=transformer"], ["model.name", "transformer", *names.MODEL_NAMES]),
    "data": (["data.name=cifar"], ["data.name", "cifar", *names.DATA_NAMES]),
    "norm": (["model.norm=group"], ["model.norm", "group", *names.NORMS]),
    "optimizer": (["optim.name=rmsprop"], ["optim.name", "rmsprop", *names.OPTIMIZERS]),
    "clip": (["train.clip=global"], ["train.clip", "global", *names.CLIPS]),
    "device": (["device=tpu"], ["device", "tpu", *names.DEVICES]),
    "depth0": (["model.depth=0"], ["model.depth", ">= 1", "0"]),
    "depth-neg": (["model.depth=-3"], ["model.depth", "-3"]),
    "width0": (["model.width=0"], ["model.width", ">= 1", "0"]),
    "lr-neg": (["optim.lr=-1"], ["optim.lr", "-1"]),
    "clip0": (["train.clip_value=0"], ["train.clip_value", "> 0"]),
    "clip-neg": (["train.clip_value=-2"], ["train.clip_value", "-2"]),
    "length0": (["data=adding", "data.length=0", "model=rnn"], ["data.length", "0"]),
    "adding-length1": (["data=adding", "data.length=1", "model=rnn"], ["data.length", "adding"]),
    "n_train0": (["data.n_train=0"], ["data.n_train"]),
    "batch>n_train": (["data.n_train=64", "train.batch_size=128"], ["train.batch_size", "data.n_train"]),
    "recurrent-on-mnist1d": (["model=lstm"], ["lstm", "sequence", "mnist1d"]),
    "rnn-non-sequence": (["model=rnn", "data=mnist1d"], ["rnn", "sequence"]),
    "copy-with-mlp": (["data=copy"], ["copy", "recurrent"]),
    "rnn-sigmoid": (["model=rnn", "data=adding", "model.activation=sigmoid"], ["model.activation", "tanh", "relu"]),
    "recurrent-norm": (["model=gru", "data=adding", "model.norm=batch"], ["model.norm", "recurrent"]),
    "gain0": (["model.init_gain=0"], ["model.init_gain"]),
    "saturation": (["probe.saturation=1.5"], ["probe.saturation"]),
    "probe_set_every0": (["probe.probe_set_every=0"], ["probe.probe_set_every"]),
    "jacobian-neg": (["probe.jacobian_inputs=-1"], ["probe.jacobian_inputs", ">= 0"]),
    "jacobian-resmlp": (["model=resmlp", "probe.jacobian_inputs=2"], ["probe.jacobian_inputs", "mlp", "resmlp"]),
    "jacobian-norm": (["model.norm=layer", "probe.jacobian_inputs=2"], ["probe.jacobian_inputs", "norm=layer"]),
    "jacobian>batch": (["train.batch_size=4", "probe.jacobian_inputs=5"], ["probe.jacobian_inputs", "batch_size=4"]),
    "epochs0": (["train.epochs=0"], ["train.epochs"]),
    "max_steps0": (["train.max_steps=0"], ["train.max_steps"]),
    "unknown-appended-key": (["+model.foo=1"], ["foo", "model"]),
    "unknown-top-key": (["+bar=2"], ["bar"]),
    "empty-out": (["out=''"], ["out"]),
    # no NaN or infinity anywhere, seeds numpy accepts
    "lr-nan": (["optim.lr=nan"], ["optim.lr", "finite", "nan"]),
    "lr-inf": (["optim.lr=inf"], ["optim.lr", "finite", "inf"]),
    "momentum-nan": (["optim.momentum=nan"], ["optim.momentum", "finite"]),
    # issue 18: a heavy-ball momentum of 1 or more never forgets a gradient
    "momentum-one": (["optim.momentum=1"], ["optim.momentum", "[0, 1)", "1.0"]),
    "momentum-two": (["optim.momentum=2"], ["optim.momentum", "[0, 1)", "2.0"]),
    "momentum-neg": (["optim.momentum=-0.5"], ["optim.momentum", "[0, 1)", "-0.5"]),
    "slope-nan": (["model.activation=leaky_relu", "model.slope=nan"], ["model.slope", "finite"]),
    "gain-inf": (["model.init_gain=inf"], ["model.init_gain", "finite"]),
    "bias-inf": (["model.bias_init=inf"], ["model.bias_init", "finite"]),
    "bias-neg-inf": (["model.bias_init=-inf"], ["model.bias_init", "finite"]),
    "clip-inf": (["train.clip_value=inf"], ["train.clip_value", "finite"]),
    "forget-nan": (["model.forget_bias=nan"], ["model.forget_bias", "finite"]),
    "saturation-nan": (["probe.saturation=nan"], ["probe.saturation"]),
    "seed-neg": (["seed=-1"], ["seed", "-1"]),
    "seed-huge": (["seed=4294967296"], ["seed", "4294967296"]),
    "data-seed-neg": (["data.seed=-1"], ["data.seed", "-1"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_values_raise_config_error(case):
    overrides, fragments = BAD[case]
    composed = compose(overrides)  # composes: the values are only wrong, not unknown to Hydra
    with pytest.raises(ConfigError) as err:
        load_run_config(composed)
    message = str(err.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_valid_boundary_values_are_accepted():
    cfg = run_config(["model.depth=1", "model.width=1", "optim.lr=0", "data=adding", "data.length=2",
                      "model=rnn", "data.n_train=1", "train.batch_size=1", "train.clip_value=1e-9"])
    assert (cfg.model.depth, cfg.model.width, cfg.optim.lr, cfg.data.length) == (1, 1, 0.0, 2)


@pytest.mark.parametrize("override", ["model.foo=1", "foo=1", "train.clip_val=2", "optim.learning_rate=0.1"])
def test_override_of_nonexistent_key_fails_at_compose(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigCompositionException, match=key.replace(".", r"\.")):
        compose([override])


@pytest.mark.parametrize("override", ["model.depth=deep", "optim.lr=fast", "probe.enabled=maybe"])
def test_a_value_of_the_wrong_type_fails_at_compose_naming_the_key(override):
    # The groups compose onto RunConfig (config.register_schema), whose fields are typed.
    with pytest.raises(ConfigCompositionException, match=re.escape(override)):
        compose([override])


def test_an_unknown_key_in_a_group_file_fails_at_compose_naming_it(tmp_path, monkeypatch):
    import shutil

    from gradatlas.workflow import studies

    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    with (conf / "model" / "rnn.yaml").open("a") as f:
        f.write("dropout: 0.5\n")
    monkeypatch.setattr(studies, "_conf_dir", lambda: conf)
    studies._composed_defaults.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"model/rnn.*'dropout'.*full_key: model\.dropout"):
            studies.compose_run({"model": "rnn", "data": "adding"})
    finally:
        studies._composed_defaults.cache_clear()


def test_a_group_file_lists_only_what_differs_from_the_dataclass_defaults():
    defaults = {"model": config.ModelConfig(), "data": config.DataConfig(), "optim": config.OptimConfig(),
                "probe": config.ProbeConfig()}
    for group, default in defaults.items():
        for path in _group_files(group):
            given = _yaml(path) or {}
            repeated = {key for key, value in given.items() if key != "name" and getattr(default, key) == value}
            assert not repeated, f"{path} repeats defaults of {type(default).__name__}: {sorted(repeated)}"


@pytest.mark.parametrize(("group", "listed"), [("model", names.MODEL_NAMES), ("data", names.DATA_NAMES)])
def test_unknown_group_option_fails_at_compose_listing_options(group, listed):
    with pytest.raises(ConfigCompositionException) as err:
        compose([f"{group}=nonesuch"])
    message = str(err.value)
    assert f"{group}/nonesuch" in message
    for name in listed:
        assert name in message


def test_factor_mapping_points_at_real_keys():
    container = OmegaConf.structured(RunConfig())
    for name, key in names.FACTORS.items():
        assert OmegaConf.select(container, key, throw_on_missing=True, default="<absent>") != "<absent>", name


@pytest.mark.parametrize(("factor", "value", "data"), [
    ("depth", 4, None), ("activation", "gelu", None), ("init", "orthogonal", None), ("gain", 1.5, None),
    ("lr", 0.003, None), ("clip", "value", None), ("bias", -0.5, None), ("bias", None, None),
    ("model", "lstm", "adding"), ("length", 17, "adding"), ("optimizer", "adam", None), ("seed", 11, None),
])
def test_a_factor_set_by_a_study_reads_back_as_that_factor(factor, value, data):
    """A factor goes through FACTORS to its config key (studies.compose_run, as the workflow
    composes each run) and factor_values reads the same value back from the config."""
    from gradatlas.workflow.studies import compose_run

    settings = {factor: value, **({"data": data} if data else {}), **({"model": "rnn"} if factor == "length" else {})}
    cfg = compose_run({"data.n_train": 128, "data.n_test": 64, **settings})
    assert config.factor_values(cfg)[factor] == value


def test_fingerprint_ignores_out_device_and_cache():
    a = run_config(["out=a", "device=cpu"])
    b = run_config(["out=b", "device=auto", "data.cache_dir=/elsewhere", "overwrite=true"])
    c = run_config(["out=a", "device=cpu", "optim.lr=0.01"])
    assert config.fingerprint(a) == config.fingerprint(b)
    assert config.fingerprint(a) != config.fingerprint(c)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_device_is_a_config_error_and_writes_nothing(tmp_path):
    cfg = run_config(["device=cuda", "model.depth=1", "model.width=2", "train.max_steps=1",
                      "data.n_train=128", "data.n_test=64"], tmp_path / "run")
    with pytest.raises(ConfigError, match="device=cuda"):
        runner.run(cfg)
    assert list(tmp_path.iterdir()) == []


def test_opt_in_probe_switches_are_left_out_of_the_container_while_off():
    """Configs that do not turn an opt-in quantity on keep the config.yaml and fingerprint they
    had before the switch existed; one that does differs, and loads back."""
    import dataclasses

    from gradatlas.run.config import OPT_IN_PROBES, RunConfig, fingerprint, load_run_config, to_container

    cfg = RunConfig()
    for name in OPT_IN_PROBES:
        assert getattr(cfg.probe, name) is False and name not in to_container(cfg)["probe"]
    on = dataclasses.replace(cfg, probe=dataclasses.replace(cfg.probe, input_norms=True))
    assert to_container(on)["probe"]["input_norms"] is True and fingerprint(on) != fingerprint(cfg)
    assert load_run_config(to_container(on)) == on and load_run_config(to_container(cfg)) == cfg


def test_every_opt_in_switch_and_later_key_leaves_config_yaml_and_the_fingerprint_alone():
    from gradatlas.run.config import LATER_KEYS, OPT_IN_PROBES, fingerprint, to_container

    assert all(LATER_KEYS.get(("probe", name)) is False for name in OPT_IN_PROBES)
    cfg = run_config(["model=mlp", "data=mnist1d"])
    content = to_container(cfg)
    for (section, key) in LATER_KEYS:
        assert key not in content[section]
    changed = run_config(["model=mlp", "data=mnist1d", "probe.input_norms=true"])
    assert to_container(changed)["probe"]["input_norms"] is True and fingerprint(changed) != fingerprint(cfg)

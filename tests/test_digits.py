"""data=digits: scikit-learn's load_digits split by the data seed, standardized with the
statistics of the examples that train, cached, and loaded without the network."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_config
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler

from gradatlas.run import config
from gradatlas.run.data import digits_split, make_dataset

pytestmark = pytest.mark.unit

SIZES = {"n_train": 1437, "n_val": 240, "n_test": 360}


def digits_config(cache: Path, **overrides) -> config.DataConfig:
    return config.DataConfig(**{"name": "digits", **SIZES, "cache_dir": str(cache), **overrides})


@pytest.fixture(scope="module")
def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    raw = load_digits()
    return raw.data, raw.target


def test_shapes_chance_and_the_default_sizes(tmp_path):
    data = make_dataset(digits_config(tmp_path))
    assert data.x_train.shape == (1437 - 240, 64) and data.x_val.shape == (240, 64)
    assert data.x_test.shape == (360, 64) and data.y_test.shape == (360,)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.long
    assert (data.input_dim, data.output_dim, data.sequence, data.task) == (64, 10, False, "classification")
    assert data.chance == pytest.approx(0.1)
    assert set(data.y_train.tolist()) == set(range(10))
    # The group's defaults use every example once.
    composed = run_config(["data=digits"]).data
    assert composed.n_train + composed.n_test == config.DIGITS_EXAMPLES


def test_split_is_disjoint_and_values_are_sklearns_standardized_by_the_training_part(sklearn_digits):
    x, y = sklearn_digits
    assert len(x) == config.DIGITS_EXAMPLES
    cfg = config.DataConfig(name="digits", **SIZES, seed=3)
    split = digits_split(x, y, cfg)
    train, test = split["index"], split["index_test"]
    assert len(set(train)) == 1437 and len(set(test)) == 360 and not set(train) & set(test)
    scaler = StandardScaler().fit(x[train[: 1437 - 240]])
    np.testing.assert_allclose(split["x"], scaler.transform(x[train]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(split["x_test"], scaler.transform(x[test]), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(split["y"], y[train])
    np.testing.assert_array_equal(split["y_test"], y[test])
    # The examples that train have mean 0 and (where the pixel varies) std 1; validation does not.
    fit = split["x"][: 1437 - 240]
    np.testing.assert_allclose(fit.mean(axis=0), 0.0, atol=1e-5)
    varying = x[train[: 1437 - 240]].std(axis=0) > 0
    np.testing.assert_allclose(fit.std(axis=0)[varying], 1.0, rtol=1e-4)
    assert np.abs(split["x"][1437 - 240 :].mean(axis=0)).max() > 1e-3


def test_make_dataset_holds_out_the_last_training_examples_for_validation(tmp_path, sklearn_digits):
    cfg = digits_config(tmp_path, seed=5)
    data = make_dataset(cfg)
    split = digits_split(*sklearn_digits, cfg)
    assert torch.equal(data.x_train, torch.as_tensor(split["x"][: 1437 - 240]))
    assert torch.equal(data.x_val, torch.as_tensor(split["x"][1437 - 240 :]))
    assert torch.equal(data.y_test, torch.as_tensor(split["y_test"], dtype=torch.long))


def test_deterministic_per_seed_and_cached(tmp_path):
    first = make_dataset(digits_config(tmp_path / "a", seed=1))
    assert len(list((tmp_path / "a").glob("digits-*.npz"))) == 1
    again = make_dataset(digits_config(tmp_path / "b", seed=1))
    cached = make_dataset(digits_config(tmp_path / "a", seed=1))
    other = make_dataset(digits_config(tmp_path / "a", seed=2))
    for data in (again, cached):
        assert torch.equal(first.x_train, data.x_train) and torch.equal(first.y_test, data.y_test)
    assert not torch.equal(first.y_train, other.y_train)


def test_loads_with_sockets_disabled(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("data=digits opened a network connection")

    for name in ("socket", "create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, refuse)
    data = make_dataset(digits_config(tmp_path, n_train=500, n_val=100, n_test=200))
    assert data.x_train.shape == (400, 64) and data.x_test.shape == (200, 64)


def test_more_examples_than_the_set_holds_is_a_config_error():
    with pytest.raises(config.ConfigError, match="exceeds the 1797 examples"):
        config.DataConfig(name="digits", n_train=1500, n_test=300)

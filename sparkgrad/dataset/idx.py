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

A gzip stream is inflated as a stream, never all at once: first the header, which says
how many bytes must follow, then exactly that many, then one more to prove the stream
ends there. A "gzip bomb" (a few MB that inflate to many GB) therefore costs no more
memory than its header promised, and a header promising more than :data:`MAX_IDX_BYTES`
(2 GiB, far above any MNIST-like file) is refused before anything is inflated.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from sparkgrad.errors import DataFormatError

GZIP_MAGIC = b"\x1f\x8b"

#: The largest data payload an IDX header may declare (2 GiB). Full MNIST's training
#: images are 47 MB; EMNIST's largest file is 550 MB.
MAX_IDX_BYTES = 2 * 2**30

#: The most bytes a gzipped CSV file may inflate to (2 GiB): a CSV has no header that
#: says how long it is, so this bound is all that stops a gzip bomb.
MAX_INFLATED_BYTES = 2 * 2**30

_CHUNK = 1 << 20

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


def decompress_if_gzip(data: bytes, name: str, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """Return the bytes, gunzipped when they start with the gzip magic ``1f 8b``.

    A file *named* ``.gz`` whose bytes are not gzip is an error too (a renamed or half
    downloaded file): it is better to say so than to guess. Inflating stops with an error
    once it passes ``limit`` bytes, so a gzip bomb cannot fill the memory.
    """
    if data[:2] == GZIP_MAGIC:
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
                out = f.read(limit + 1)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(
                f"{name}: not a valid gzip stream (truncated or corrupt: {exc})"
            ) from None
        if len(out) > limit:
            raise DataFormatError(
                f"{name}: inflates to more than {limit} bytes ({limit / 2**30:g} GiB, "
                "sparkgrad.dataset.idx.MAX_INFLATED_BYTES): refusing it (a gzip bomb?)"
            )
        return out
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


def declared_bytes(dtype: np.dtype, shape: tuple[int, ...], name: str) -> int:
    """The data bytes a header promises; DataFormatError beyond :data:`MAX_IDX_BYTES`."""
    expected = math.prod(shape) * dtype.itemsize
    if expected > MAX_IDX_BYTES:
        raise DataFormatError(
            f"{name}: header declares shape {shape} of {dtype.newbyteorder('=').name}, "
            f"{expected} data bytes; this reader accepts at most {MAX_IDX_BYTES} bytes "
            f"({MAX_IDX_BYTES / 2**30:g} GiB, sparkgrad.dataset.idx.MAX_IDX_BYTES)"
        )
    return expected


def _parse_stream(f: Any, name: str, total: int | None) -> np.ndarray:
    """Header, then exactly the promised bytes, then proof that nothing follows.

    ``total``: the size of an uncompressed file (to name the exact surplus), None for gzip.
    """
    dtype, shape, header_size = _read_header(f, name)
    expected = declared_bytes(dtype, shape, name)
    body = f.read(expected)
    if len(body) < expected:
        raise DataFormatError(
            f"{name}: truncated: header says shape {shape} ({expected} data bytes), "
            f"found {len(body)} data bytes"
        )
    if f.read(1):
        surplus = (
            f"{total - header_size - expected} unexpected trailing bytes"
            if total is not None
            else "more bytes than the header declares (stopped inflating there)"
        )
        raise DataFormatError(
            f"{name}: {surplus} after the {shape} array (expected exactly {expected} data bytes)"
        )
    array = np.frombuffer(body, dtype=dtype, count=math.prod(shape))
    return array.reshape(shape).astype(dtype.newbyteorder("="))


def _parse_file(raw: Any, name: str, total: int | None) -> np.ndarray:
    """Parse an open binary file (raw or gzip) positioned at its start."""
    try:
        f, is_gzip = _open_stream(raw, name)
        return _parse_stream(f, name, None if is_gzip else total)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataFormatError(
            f"{name}: not a valid gzip stream (truncated or corrupt: {exc})"
        ) from None


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an IDX file (gzipped or not) into a native-endian array."""
    data = bytes(data)
    if data[:2] != GZIP_MAGIC:
        decompress_if_gzip(data[:2], name)  # raises for a ".gz" name on non-gzip bytes
    return _parse_file(io.BytesIO(data), name, len(data))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read a whole IDX file (``.gz`` or raw) into a NumPy array."""
    name = _name(path)
    with _open_file(path, name) as raw:
        return _parse_file(raw, name, os.fstat(raw.fileno()).st_size)


def _open_file(path: str | os.PathLike, name: str) -> Any:
    """``open(path, "rb")``, with a DataFormatError that says why a file cannot be read."""
    try:
        return open(path, "rb")
    except IsADirectoryError:
        raise DataFormatError(f"{name}: is a directory, expected an IDX file") from None
    except OSError as exc:
        raise DataFormatError(f"{name}: cannot read the file ({exc.strerror or exc})") from None


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
    with _open_file(path, name) as raw:
        try:
            return _read_header(_open_stream(raw, name)[0], name)[1]
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(f"{name}: not a valid gzip stream ({exc})") from None


def check_idx_file(path: str | os.PathLike) -> tuple[np.dtype, tuple[int, ...]]:
    """``(dtype, shape)`` of an IDX file, its length checked, its data not read.

    What the driver runs before a training job starts: a raw file's size must be exactly
    header + data; a gzip file's trailer (ISIZE, the inflated length modulo 2**32) must
    say the same. Only when the trailer disagrees (a truncated file, or several gzip
    members) is the stream inflated, chunk by chunk in constant memory, to find out.
    """
    name = _name(path)
    with _open_file(path, name) as raw:
        try:
            f, is_gzip = _open_stream(raw, name)
            dtype, shape, header_size = _read_header(f, name)
            total = header_size + declared_bytes(dtype, shape, name)
            if not is_gzip:
                size = os.fstat(raw.fileno()).st_size
                if size != total:
                    raise DataFormatError(
                        f"{name}: header says shape {shape} ({total} bytes with the header), "
                        f"the file has {size} bytes ({'truncated' if size < total else 'too long'})"
                    )
                return dtype, shape
            raw.seek(-4, os.SEEK_END)
            if int.from_bytes(raw.read(4), "little") == total % 2**32:
                return dtype, shape
            raw.seek(0)
            f, _ = _open_stream(raw, name)
            inflated = 0
            while chunk := f.read(min(_CHUNK, total + 1 - inflated)):
                inflated += len(chunk)
                if inflated > total:
                    break
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(
                f"{name}: not a valid gzip stream (truncated or corrupt: {exc})"
            ) from None
    if inflated == total:  # several gzip members: the last one's trailer holds its own size
        return dtype, shape
    if inflated < total:
        raise DataFormatError(
            f"{name}: truncated: header says shape {shape} ({total} bytes with the header), "
            f"the gzip stream inflates to {inflated} bytes"
        )
    raise DataFormatError(
        f"{name}: more bytes than the header declares after the {shape} array "
        f"(expected exactly {total} bytes with the header)"
    )


def read_idx_records(path: str | os.PathLike, indices: Sequence[int]) -> np.ndarray:
    """Read only the records ``indices`` (along the first axis) of an IDX file.

    For a raw file this seeks to ``header + i * record_size`` for each index, so a rank that
    needs 1/n of the data reads 1/n of the bytes. A gzip stream cannot seek, so it is
    decompressed once front to back, keeping only the wanted records in memory. The order
    (and repeats) of ``indices`` are kept, as a sampler gives them.
    """
    name = _name(path)
    with _open_file(path, name) as raw:
        try:
            f, is_gzip = _open_stream(raw, name)
            dtype, shape, header_size = _read_header(f, name)
            declared_bytes(dtype, shape, name)
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

"""Frames: how one array travels over a byte stream, with a small validated header.

Every message between two ranks is one *frame*: a fixed 32-byte prefix, the shape, a
short text *fingerprint* naming the collective call it belongs to, then the raw array
bytes. Nothing is pickled: the receiver checks every field against hard limits *before*
allocating anything, so a malformed or hostile frame gives a clear :class:`CommError`
instead of a crash or an unbounded allocation.

Prefix layout (little-endian, ``struct`` format ``<4sBBBBHHIQQ``)::

    magic "SGF1" | version | kind | dtype code | ndim | src rank | fingerprint length
    | communicator tag | sequence number | payload length in bytes

The dtype code is an index into :data:`DTYPES` (NumPy's numeric types, then ``bfloat16`` when
``ml_dtypes`` is installed): a 2-byte bfloat16 element travels as its own raw bytes and lands
as bfloat16, not as a relabelled uint16.

The fingerprint (e.g. ``all_reduce(shape=(4,), dtype=float32, op=SUM, algo=ring)``) is how a
rank notices that its peer called a different collective: see :mod:`.communicator`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparkgrad.errors import CommError

MAGIC = b"SGF1"
VERSION = 1
PREFIX = struct.Struct("<4sBBBBHHIQQ")
MAX_NDIM = 8
MAX_FINGERPRINT = 1024
DEFAULT_MAX_FRAME_BYTES = 1 << 30  # 1 GiB; larger arrays are split into several frames

# What a frame is for. DATA carries array bytes of a collective or send/recv; ACK (no
# bytes) says "my part of this call is done" in a rooted collective (see Channel.confirm);
# STUCK and MISMATCH are control frames that stop a doomed collective on every rank.
DATA, STUCK, MISMATCH, ACK = 0, 1, 2, 3
KINDS = (DATA, STUCK, MISMATCH, ACK)

DTYPES = (
    np.dtype(np.bool_),
    np.dtype(np.int8),
    np.dtype(np.uint8),
    np.dtype(np.int16),
    np.dtype(np.uint16),
    np.dtype(np.int32),
    np.dtype(np.uint32),
    np.dtype(np.int64),
    np.dtype(np.uint64),
    np.dtype(np.float16),
    np.dtype(np.float32),
    np.dtype(np.float64),
    np.dtype(np.complex64),
    np.dtype(np.complex128),
)
try:  # bfloat16 (ZeRO's 16-bit params and grads under --precision bf16) needs ml_dtypes
    from ml_dtypes import bfloat16 as _bfloat16

    DTYPES += (np.dtype(_bfloat16),)  # code 14: appended, so the other codes never move
except ImportError:  # pragma: no cover - ml_dtypes is optional
    pass
_DTYPE_CODE = {dt: i for i, dt in enumerate(DTYPES)}


@dataclass
class Frame:
    """One message: who sent it, for which call, and (for DATA) the array itself."""

    kind: int
    src: int
    tag: int
    seq: int
    fingerprint: str
    array: Any  # 1-D or n-D NumPy array; control frames carry none
    direct: bool = False  # True: the bytes landed straight in the receiver's buffer


def dtype_code(dtype: Any) -> int:
    """The one-byte code of a dtype, or a clear error for dtypes that cannot travel."""
    dt = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).byteorder == ">" else np.dtype(dtype)
    try:
        return _DTYPE_CODE[dt]
    except KeyError:
        raise CommError(
            f"expected an array dtype among {[str(d) for d in DTYPES]}, found {dt}"
        ) from None


def encode_header(frame: Frame) -> bytes:
    """Prefix + shape + fingerprint of ``frame`` (the payload is sent after, uncopied)."""
    arr = frame.array if frame.array is not None else np.empty(0, np.uint8)
    fp = frame.fingerprint.encode("utf-8")[:MAX_FINGERPRINT]
    if arr.ndim > MAX_NDIM:
        raise CommError(f"expected at most {MAX_NDIM} dimensions, found shape {arr.shape}")
    prefix = PREFIX.pack(
        MAGIC,
        VERSION,
        frame.kind,
        dtype_code(arr.dtype),
        arr.ndim,
        frame.src,
        len(fp),
        frame.tag,
        frame.seq,
        arr.nbytes,
    )
    return prefix + struct.pack(f"<{arr.ndim}Q", *arr.shape) + fp


@dataclass
class Prefix:
    """The validated fixed part of a header: enough to know how much more to read."""

    kind: int
    dtype: np.dtype
    ndim: int
    src: int
    fp_len: int
    tag: int
    seq: int
    nbytes: int

    @property
    def rest_len(self) -> int:
        """Bytes of shape + fingerprint that follow the prefix."""
        return 8 * self.ndim + self.fp_len


def decode_prefix(buf: Any, max_frame_bytes: int, world_size: int) -> Prefix:
    """Parse and validate the 32-byte prefix; raise :class:`CommError` on anything odd."""
    magic, version, kind, code, ndim, src, fp_len, tag, seq, nbytes = PREFIX.unpack(buf)
    if magic != MAGIC:
        raise CommError(f"malformed frame: expected magic {MAGIC!r}, found {bytes(magic)!r}")
    if version != VERSION:
        raise CommError(f"frame version {version} not supported (expected {VERSION})")
    if kind not in KINDS:
        raise CommError(f"malformed frame: unknown kind {kind}")
    if code >= len(DTYPES):
        raise CommError(f"malformed frame: unknown dtype code {code}")
    if ndim > MAX_NDIM or fp_len > MAX_FINGERPRINT:
        raise CommError(f"malformed frame: ndim {ndim} or fingerprint length {fp_len} too big")
    if src >= world_size:
        raise CommError(f"malformed frame: source rank {src} outside world of {world_size}")
    if nbytes > max_frame_bytes:
        raise CommError(
            f"oversized frame: {nbytes} bytes announced, limit is {max_frame_bytes} "
            "(raise max_frame_bytes if this is intended)"
        )
    return Prefix(kind, DTYPES[code], ndim, src, fp_len, tag, seq, nbytes)


def decode_rest(prefix: Prefix, rest: Any) -> tuple[tuple[int, ...], str]:
    """Shape and fingerprint from the bytes after the prefix, checked against the length."""
    shape = struct.unpack(f"<{prefix.ndim}Q", bytes(rest[: 8 * prefix.ndim]))
    try:
        fingerprint = bytes(rest[8 * prefix.ndim :]).decode("utf-8")
    except UnicodeDecodeError:
        raise CommError("malformed frame: fingerprint is not UTF-8") from None
    expected = math.prod(shape) * prefix.dtype.itemsize
    if expected != prefix.nbytes:
        raise CommError(
            f"malformed frame: shape {shape} of {prefix.dtype} needs {expected} bytes, "
            f"header announces {prefix.nbytes}"
        )
    return tuple(int(s) for s in shape), fingerprint

"""Rank 0's return value as raw bytes, and back: safetensors for arrays, JSON for the rest.

:class:`~sparkgrad.engine.spark_runner.SparkRunner` brings rank 0's return value from a
Spark task to the driver. The value can be a whole model, so it must travel as bytes we
can check, and it must never be unpickled (pickle runs code chosen by whoever wrote the
bytes). The payload is::

    b"SGRV" | u32 version | u64 json length | JSON (UTF-8) | safetensors bytes

The JSON is the value itself with every array replaced by a reference into the
safetensors part, ``{"__ndarray__": "a3"}``. What can come back:

- ``None``, ``bool``, ``int``, ``float``, ``str`` (NumPy scalars become Python ones);
- NumPy arrays, CuPy arrays and sparkgrad ``Tensor`` objects (both arrive as NumPy
  arrays of the same dtype and shape);
- ``list``, ``tuple`` (tuples stay tuples) and ``dict`` with ``str`` keys, nested freely:
  a ``state_dict``, a metrics dict, a tuple of both.

Anything else raises :class:`~sparkgrad.errors.ConfigError` on the rank (a class instance
cannot be rebuilt without pickle; return its ``state_dict()`` instead).

:func:`split` cuts the payload into chunks of a few MiB so that no single Spark record is
huge; :func:`join` puts them back and checks count, length and SHA-256 before decoding.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import safetensors.numpy

from sparkgrad.autodiff.backend import to_numpy
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import CommError, ConfigError, DataFormatError

MAGIC = b"SGRV"
VERSION = 1
HEADER = struct.Struct("<4sIQ")
ARRAY_TAG, TUPLE_TAG = "__ndarray__", "__tuple__"
CHUNK_BYTES = 4 << 20  # 4 MiB per Spark record


def _as_array(value: Any) -> np.ndarray | None:
    """A NumPy copy of an array-like (NumPy, CuPy, Tensor), or None for anything else."""
    if isinstance(value, Tensor):
        return to_numpy(value.array)
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "__cuda_array_interface__"):
        return to_numpy(value)
    return None


def _flatten(value: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """The JSON-able skeleton of ``value``; arrays go into ``arrays``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    array = _as_array(value)
    if array is not None:
        if array.dtype.kind not in "biuf":
            raise ConfigError(
                f"return value at {path}: expected a bool/int/float array, found dtype "
                f"{array.dtype}"
            )
        key = f"a{len(arrays)}"
        arrays[key] = array if array.flags.c_contiguous else array.copy(order="C")  # keeps 0-d
        return {ARRAY_TAG: key}
    if isinstance(value, tuple):
        return {TUPLE_TAG: [_flatten(v, arrays, f"{path}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_flatten(v, arrays, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or k in (ARRAY_TAG, TUPLE_TAG):
                raise ConfigError(
                    f"return value at {path}: expected str dict keys other than "
                    f"{ARRAY_TAG!r}/{TUPLE_TAG!r}, found {k!r}"
                )
            out[k] = _flatten(v, arrays, f"{path}[{k!r}]")
        return out
    raise ConfigError(
        f"return value at {path}: expected None, bool, int, float, str, an array, or a "
        f"list/tuple/dict of those, found {type(value).__name__} (return its state_dict())"
    )


def encode(value: Any) -> bytes:
    """The payload bytes of ``value`` (see the module docstring for what may be returned)."""
    arrays: dict[str, np.ndarray] = {}
    skeleton = _flatten(value, arrays, "result")
    text = json.dumps({"value": skeleton}).encode()
    tensors = safetensors.numpy.save(arrays)
    return HEADER.pack(MAGIC, VERSION, len(text)) + text + tensors


def _rebuild(node: Any, arrays: dict[str, np.ndarray], used: set[str]) -> Any:
    if isinstance(node, list):
        return [_rebuild(v, arrays, used) for v in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {ARRAY_TAG}:
        key = node[ARRAY_TAG]
        if key not in arrays:
            raise DataFormatError(f"result payload refers to array {key!r}, which is missing")
        used.add(key)
        return arrays[key]
    if set(node) == {TUPLE_TAG}:
        return tuple(_rebuild(v, arrays, used) for v in node[TUPLE_TAG])
    return {k: _rebuild(v, arrays, used) for k, v in node.items()}


def decode(payload: bytes) -> Any:
    """The value :func:`encode` was given, rebuilt without pickle; checks every part."""
    if len(payload) < HEADER.size:
        raise DataFormatError(f"result payload of {len(payload)} bytes is shorter than a header")
    magic, version, n = HEADER.unpack_from(payload)
    if magic != MAGIC or version != VERSION:
        raise DataFormatError(
            f"expected a result payload {MAGIC!r} v{VERSION}, found {magic!r} v{version}"
        )
    if HEADER.size + n > len(payload):
        raise DataFormatError(f"result payload claims {n} JSON bytes, only {len(payload)} in all")
    try:
        skeleton = json.loads(payload[HEADER.size : HEADER.size + n])["value"]
        arrays = safetensors.numpy.load(payload[HEADER.size + n :])
    except Exception as exc:  # JSON or safetensors refused the bytes
        raise DataFormatError(f"result payload is corrupt: {exc}") from None
    used: set[str] = set()
    value = _rebuild(skeleton, arrays, used)
    if used != set(arrays):
        raise DataFormatError(f"result payload holds unreferenced arrays {set(arrays) - used}")
    return value


def split(payload: bytes, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple]:
    """Records for Spark: a header ``("head", count, length, sha256)``, then the chunks."""
    count = max(1, -(-len(payload) // chunk_bytes))
    yield ("head", count, len(payload), hashlib.sha256(payload).hexdigest())
    view = memoryview(payload)
    for i in range(count):
        yield ("chunk", i, bytes(view[i * chunk_bytes : (i + 1) * chunk_bytes]))


def join(records: list[tuple]) -> bytes:
    """The payload from :func:`split`'s records (any order); checks count, length, digest."""
    heads = [r for r in records if r and r[0] == "head"]
    if len(heads) != 1:
        raise CommError(f"expected one result header from rank 0, found {len(heads)}")
    _, count, length, digest = heads[0]
    chunks = {r[1]: r[2] for r in records if r and r[0] == "chunk"}
    if sorted(chunks) != list(range(count)):
        raise CommError(f"expected result chunks 0..{count - 1}, found {sorted(chunks)[:10]}")
    payload = b"".join(chunks[i] for i in range(count))
    if len(payload) != length or hashlib.sha256(payload).hexdigest() != digest:
        raise CommError(
            f"rank 0's result arrived damaged: {len(payload)} bytes (expected {length}) "
            "or a SHA-256 mismatch"
        )
    return payload

"""Save and load models as safetensors files that PyTorch loads as they are.

safetensors is a flat file: an 8-byte header length, a JSON header (name → dtype, shape,
byte offsets, plus free-form string metadata), then the raw tensor bytes. Nothing in it is
executable, unlike a pickle. Key names follow PyTorch (``0.weight``, ``0.bias``, ...), weights
keep PyTorch's ``(out, in)`` layout, so::

    save_safetensors(model, "model.safetensors", {"accuracy": "0.93"})
    torch_model.load_state_dict(safetensors.torch.load_file("model.safetensors"))

A SHA-256 of the tensor bytes goes into the metadata, so a file that was truncated *or*
tampered with fails to load with :class:`~sparkgrad.errors.CheckpointError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import to_numpy
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import CheckpointError

DIGEST_KEY = "sparkgrad.sha256"


def _as_arrays(model_or_state_dict: Any) -> dict[str, np.ndarray]:
    state = model_or_state_dict
    if hasattr(state, "state_dict"):
        state = state.state_dict()
    if not isinstance(state, Mapping):
        raise TypeError(f"expected a Module or a state_dict mapping, found {type(state).__name__}")
    arrays = {}
    for name, value in state.items():
        data = value.array if isinstance(value, Tensor) else value
        arrays[str(name)] = np.asarray(to_numpy(data), order="C")  # keeps 0-d shapes
    return arrays


def tensor_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_safetensors(
    model_or_state_dict: Any, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None
) -> str:
    """Write the tensors atomically (temporary name, then rename); returns the path.

    ``metadata`` values that are not strings are stored as JSON text.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import save

    arrays = _as_arrays(model_or_state_dict)
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()}
    meta[DIGEST_KEY] = tensor_digest(arrays)
    try:
        payload = save(arrays, metadata=meta)
    except SafetensorError as exc:
        raise CheckpointError(f"cannot export to {os.fspath(path)!r}: {exc}") from None
    return write_atomic(path, payload)


def write_atomic(path: str | os.PathLike, payload: bytes) -> str:
    """Write ``payload`` to a temporary name in the same directory, then rename it.

    ``os.replace`` is atomic on one file system: a reader sees the old file or the new
    one, never half of it, and a crash leaves only a ``.tmp-*`` file behind.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_safetensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read ``(arrays, metadata)``; CheckpointError for a missing, corrupt or altered file."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise CheckpointError(f"cannot read safetensors file {path!r}: {exc}") from None
    return parse_safetensors(raw, repr(path))


def parse_safetensors(raw: bytes, name: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``(arrays, metadata)`` from the bytes of a safetensors file, digest checked.

    ``name`` is how messages call the file (its quoted path, or ``<file object>``).
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load

    try:
        arrays = load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        metadata = json.loads(raw[8 : 8 + header_len]).get("__metadata__", {}) or {}
    except (SafetensorError, ValueError, OverflowError, AttributeError) as exc:
        raise CheckpointError(
            f"{name} is not a valid safetensors file ({len(raw)} bytes): {exc}. "
            "It may be truncated or overwritten; re-export it."
        ) from None
    expected = metadata.get(DIGEST_KEY)
    if expected is not None and tensor_digest(arrays) != expected:
        raise CheckpointError(
            f"{name}: tensor bytes do not match the SHA-256 stored in its header "
            f"(expected {expected[:12]}…): the file was altered after it was written"
        )
    return arrays, metadata

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
import re
import secrets
import time
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


#: A temporary file of a killed writer is removed after this many seconds even when its
#: PID is alive again (PIDs are reused), by the next successful write of the same target.
STALE_TMP_SECONDS = 15 * 60


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # another user's process (or a PID no process can have)
    return True


def remove_stale_tmp(path: str | os.PathLike) -> list[str]:
    """Remove temporary files that killed writers of ``path`` left behind; return them.

    Only files named as :func:`write_atomic` names them for this very ``path``
    (``<name>.tmp-<pid>-<8 hex>``, or ``<name>.tmp-<pid>`` of older versions) are candidates,
    and only when process ``<pid>`` no longer runs or the file is older than
    :data:`STALE_TMP_SECONDS`: a writer still at work keeps its file.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(re.escape(os.path.basename(path)) + r"\.tmp-(\d+)(?:-[0-9a-f]{8})?$")
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        match = pattern.match(name)
        if match is None:
            continue
        candidate = os.path.join(directory, name)
        try:
            old = now - os.lstat(candidate).st_mtime > STALE_TMP_SECONDS
            if (old or not _pid_alive(int(match.group(1)))) and os.path.isfile(candidate):
                os.remove(candidate)
                removed.append(candidate)
        except OSError:  # gone already, or not ours to remove: leave it
            continue
    return removed


def write_atomic(path: str | os.PathLike, payload: bytes) -> str:
    """Write ``payload`` to a temporary name in the same directory, then rename it.

    ``os.replace`` is atomic on one file system: a reader sees the old file or the new
    one, never half of it, and a crash leaves only a ``.tmp-*`` file behind, which the
    next successful write of the same path removes (:func:`remove_stale_tmp`).
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
    remove_stale_tmp(path)
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

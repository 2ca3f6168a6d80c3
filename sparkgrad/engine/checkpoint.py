"""Checkpoints: resume training exactly where it stopped, with nothing but tensors and JSON.

One checkpoint is one folder, named after its step::

    checkpoints/
      step-000100/
        model.safetensors       the model's state_dict (PyTorch key names)
        optimizer.safetensors   every optimizer buffer, as ``state.<index>.<name>``
        checkpoint.json         step, epoch, sampler position, RNG state, config, the
                                optimizer's hyper-parameters, and a SHA-256 per file
      step-000120/
      step-000140.tmp-4242/     half-written by a crashed run: ignored

Why it is safe:

- **Never pickle.** Loading a pickle runs code; safetensors and JSON are pure data.
- **Atomic.** A folder is written under a temporary name and renamed when complete, so
  ``step-000140`` either exists whole or not at all.
- **Verified.** The JSON records the SHA-256 of each file; safetensors files carry one of
  their tensor bytes and the step. Every field of the JSON is checked before use
  (:mod:`~sparkgrad.engine.checkpoint_schema`; pass ``validate=`` for checks of your own,
  as the engine does against the run that resumes). :func:`load_latest_checkpoint` skips
  a damaged checkpoint with a warning naming the file and the field and falls back to the
  one before; when there are checkpoints but none is sound it raises
  :class:`~sparkgrad.errors.CheckpointError` rather than silently starting afresh.

Saving and resuming::

    save_checkpoint("ckpt", step, model.state_dict(), opt.state_dict(),
                    {"epoch": epoch, "sampler": {"epoch": epoch, "batches_done": k}, "config": cfg})
    ckpt = load_latest_checkpoint("ckpt")          # None when there is nothing to resume
    if ckpt is not None:
        model.load_state_dict(ckpt.model_state)
        opt.load_state_dict(ckpt.optimizer_state)
        sg.random.set_rng_state(ckpt.meta["rng"])  # dropout & co. continue identically

``optimizer.state_dict()`` (PyTorch layout ``{"state": {0: {"momentum_buffer": ...}},
"param_groups": [{"lr": 0.1, ..., "params": [0, 1]}]}``) is split in two: arrays go to
safetensors, everything else (hyper-parameters, Python scalars) to the JSON. Loading puts
it back together, so ``optimizer.load_state_dict(ckpt.optimizer_state)`` restores it
bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import to_numpy
from sparkgrad.autodiff.random import get_rng_state
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.engine.checkpoint_schema import (
    FORMAT,
    META_FILE,
    MODEL_FILE,
    OPTIMIZER_FILE,
    VERSION,
    check_header,
    check_record,
    parse_json,
)
from sparkgrad.engine.checkpoint_store import ArrowStore, LocalStore, open_store
from sparkgrad.errors import CheckpointError, ConfigError
from sparkgrad.export import load_safetensors, save_safetensors

__all__ = [
    "FORMAT",
    "META_FILE",
    "MODEL_FILE",
    "OPTIMIZER_FILE",
    "VERSION",
    "Checkpoint",
    "list_checkpoints",
    "load_latest_checkpoint",
    "save_checkpoint",
]
_COMPLETE = re.compile(r"^step-(\d+)$")
_RESERVED = {"format", "version", "step", "optimizer", "files", "saved_at"}


@dataclass
class Checkpoint:
    """What :func:`load_latest_checkpoint` returns: arrays on the CPU plus the JSON."""

    step: int
    location: str
    model_state: dict[str, np.ndarray]
    optimizer_state: dict[str, Any] | None
    meta: dict[str, Any]  # the JSON: step, epoch, sampler, rng, config, your own keys


# ---- optimizer state <-> (arrays, JSON) ------------------------------------------------------
def _as_array(value: Any) -> np.ndarray | None:
    if isinstance(value, Tensor):
        return np.asarray(to_numpy(value.array), order="C")
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        return np.asarray(value.detach().cpu().numpy(), order="C")
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # NumPy / CuPy
        return np.asarray(to_numpy(value), order="C")
    return None


def _to_json(value: Any, where: str) -> Any:
    """Plain JSON, with tuples kept as tuples (``{"__tuple__": [...]}``), e.g. Adam's betas."""
    if isinstance(value, tuple):
        return {"__tuple__": [_to_json(v, where) for v in value]}
    if isinstance(value, list):
        return [_to_json(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v, where) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CheckpointError(
        f"{where}: expected JSON-friendly values (numbers, strings, lists), found "
        f"{type(value).__name__}"
    )


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_from_json(v) for v in value["__tuple__"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def flatten_optimizer_state(state_dict: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict]:
    """Split a PyTorch-layout optimizer state dict into safetensors arrays and JSON."""
    if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
        raise ConfigError("expected an optimizer state_dict with keys 'state' and 'param_groups'")
    arrays: dict[str, np.ndarray] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, buffers in state_dict["state"].items():
        for name, value in buffers.items():
            array = _as_array(value)
            if array is not None:
                arrays[f"state.{int(index)}.{name}"] = array
            else:
                scalars.setdefault(str(int(index)), {})[name] = _to_json(value, f"state {name}")
    groups = _to_json(state_dict["param_groups"], "param_groups")
    return arrays, {"param_groups": groups, "scalars": scalars}


def unflatten_optimizer_state(arrays: dict[str, np.ndarray], rest: dict) -> dict[str, Any]:
    """Inverse of :func:`flatten_optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for key, array in arrays.items():
        head, index, name = (key.split(".", 2) + ["", ""])[:3]
        if head != "state" or not index.isdigit() or not name:
            raise CheckpointError(
                f"{OPTIMIZER_FILE}: expected tensors named state.<index>.<buffer>, found {key!r}"
            )
        state.setdefault(int(index), {})[name] = array
    for index, values in rest.get("scalars", {}).items():
        if not str(index).isdigit() or not isinstance(values, dict):
            raise CheckpointError(f"{META_FILE} optimizer.scalars: bad entry {index!r}")
        state.setdefault(int(index), {}).update(_from_json(values))
    return {"state": dict(sorted(state.items())), "param_groups": _from_json(rest["param_groups"])}


# ---- saving ------------------------------------------------------------------------------
def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(
    directory: str | os.PathLike,
    step: int,
    model_state: Any,
    optimizer_state: Any = None,
    meta: dict[str, Any] | None = None,
    keep: int | None = 3,
    filesystem: Any = None,
) -> str:
    """Write checkpoint ``step-<step>`` atomically under ``directory``; returns its location.

    Args:
        directory: a local path, a ``file://`` URI or a URI ``pyarrow.fs`` opens.
        step: the number of optimizer steps done (names the folder).
        model_state: a ``state_dict()`` (or the module itself).
        optimizer_state: an optimizer ``state_dict()`` (or the optimizer), or None.
        meta: JSON-friendly extras: ``epoch``, ``sampler`` (position), ``config``, ``rng``
            (default: the current :func:`~sparkgrad.autodiff.random.get_rng_state`) and
            any key of your own.
        keep: how many complete checkpoints to keep (oldest deleted first); None keeps all.
        filesystem: a ``pyarrow.fs.FileSystem`` to write through instead of resolving
            ``directory`` (``directory`` is then a path on it).
    """
    if not isinstance(step, (int, np.integer)) or step < 0:
        raise ConfigError(f"expected a non-negative integer step, found {step!r}")
    if keep is not None and keep < 1:
        raise ConfigError(f"expected keep >= 1 (or None to keep all), found {keep}")
    meta = dict(meta or {})
    if clash := _RESERVED & set(meta):
        raise ConfigError(f"meta may not set {sorted(clash)}: they are written by the checkpoint")
    if hasattr(optimizer_state, "state_dict"):
        optimizer_state = optimizer_state.state_dict()
    store = open_store(directory, filesystem)
    name = f"step-{int(step):06d}"
    staging = store.staging_dir(name)
    try:
        files = [MODEL_FILE]
        save_safetensors(model_state, os.path.join(staging, MODEL_FILE), {"step": int(step)})
        optimizer_json = None
        if optimizer_state is not None:
            arrays, optimizer_json = flatten_optimizer_state(optimizer_state)
            save_safetensors(arrays, os.path.join(staging, OPTIMIZER_FILE), {"step": int(step)})
            files.append(OPTIMIZER_FILE)
        record = {"epoch": None, "sampler": None, "config": None, "rng": get_rng_state(), **meta}
        record = {
            "format": FORMAT,
            "version": VERSION,
            "step": int(step),
            **_to_json(record, "meta"),
            "optimizer": optimizer_json,
            "files": {f: _sha256(os.path.join(staging, f)) for f in files},
            "saved_at": time.time(),
        }
        with open(os.path.join(staging, META_FILE), "w") as f:
            json.dump(record, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        location = store.publish(staging, name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # no half-written folder stays behind
        raise
    _prune(store, keep)
    return location


def _complete(store: LocalStore | ArrowStore) -> list[tuple[int, str]]:
    """``(step, name)`` of every complete checkpoint folder, newest first."""
    found = [(int(m.group(1)), n) for n in store.names() if (m := _COMPLETE.match(n))]
    return sorted(found, reverse=True)


def _prune(store: LocalStore | ArrowStore, keep: int | None) -> None:
    """Delete all but the newest ``keep`` checkpoints, and leftovers of crashed writers."""
    for name in store.names():
        if ".tmp-" in name or ".old-" in name:
            store.remove(name)
    if keep is not None:
        for _, name in _complete(store)[keep:]:
            store.remove(name)


# ---- loading -----------------------------------------------------------------------------
Validator = Callable[[Checkpoint], None]
#: What a damaged checkpoint raises while it is read and checked (all mean: skip it).
DAMAGE = (CheckpointError, OSError, KeyError, ValueError, TypeError, IndexError)


def _read(store: LocalStore | ArrowStore, name: str, step: int) -> Checkpoint:
    local = store.local_copy(name)
    try:
        try:
            with open(os.path.join(local, META_FILE), "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise CheckpointError(f"{META_FILE} cannot be read ({exc})") from None
        record = check_record(parse_json(raw), step)
        for file, digest in record["files"].items():
            path = os.path.join(local, file)
            if not os.path.exists(path) or _sha256(path) != digest:
                raise CheckpointError(f"{file} is missing or its SHA-256 does not match")
        model_state, header = load_safetensors(os.path.join(local, MODEL_FILE))
        check_header(MODEL_FILE, header, step)
        optimizer_state = None
        if record["optimizer"] is not None:
            arrays, header = load_safetensors(os.path.join(local, OPTIMIZER_FILE))
            check_header(OPTIMIZER_FILE, header, step)
            optimizer_state = unflatten_optimizer_state(arrays, record["optimizer"])
    finally:
        store.release(local)
    location = f"{str(store).rstrip('/')}/{name}"
    return Checkpoint(step, location, model_state, optimizer_state, _from_json(record))


def list_checkpoints(directory: str | os.PathLike, filesystem: Any = None) -> list[int]:
    """Steps of the complete checkpoint folders under ``directory``, oldest first."""
    return sorted(step for step, _ in _complete(open_store(directory, filesystem)))


def load_latest_checkpoint(
    directory: str | os.PathLike, filesystem: Any = None, validate: Validator | None = None
) -> Checkpoint | None:
    """The newest checkpoint that loads and verifies, or None if there is none at all.

    A damaged checkpoint (truncated or altered file, bad JSON, a field of the wrong type or
    out of range, a file from another checkpoint) is skipped with a ``UserWarning`` naming
    it and the reason, and the one before is tried. ``validate(checkpoint)`` adds checks of
    your own (raise :class:`CheckpointError` to reject). When checkpoints exist but none is
    sound, :class:`CheckpointError` lists each with its reason: resuming from nothing
    would silently throw the run's progress away.
    """
    store = open_store(directory, filesystem)
    skipped: list[str] = []
    for step, name in _complete(store):
        try:
            ckpt = _read(store, name, step)
            if validate is not None:
                validate(ckpt)
        except DAMAGE as exc:
            reason = f"{name}: {exc}"
            skipped.append(reason)
            warnings.warn(
                f"skipping checkpoint {name} in {store}: {exc}; trying an older one",
                stacklevel=2,
            )
            continue
        return ckpt
    if skipped:
        raise CheckpointError(
            f"no sound checkpoint in {store} to resume from: {'; '.join(skipped)}. Repair or "
            "remove them, or start afresh in another --checkpoint-dir"
        )
    return None

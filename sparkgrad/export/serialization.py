"""``sg.save`` / ``sg.load``: ``torch.save``/``torch.load`` without pickle, as ONE safetensors file.

PyTorch pickles: ``torch.load`` of a stranger's file can run code (hence its
``weights_only``). Here a checkpoint is pure data::

    sg.save({"epoch": 3, "model": model.state_dict(), "optimizer": opt.state_dict()}, "ckpt.pt")
    ckpt = sg.load("ckpt.pt")
    model.load_state_dict(ckpt["model"]); opt.load_state_dict(ckpt["optimizer"])

What is stored: dicts (``str`` or ``int`` keys, ``OrderedDict`` kept), lists, tuples,
Tensors (any dtype, 0-d included, CPU or CUDA; ``requires_grad`` and ``Parameter`` kept),
NumPy arrays and scalars, ``int``/``float``/``bool``/``None``/``str``. Anything else raises a
``TypeError`` naming where it sits, e.g. ``obj["model"]["fn"]``.

The file layout, readable by any safetensors reader:

- every Tensor or array becomes one safetensors tensor, named after its path in the object
  (``model.0.weight``, ``optimizer.state.0.momentum_buffer``): a plain ``state_dict`` saved
  this way *is* a state_dict file for ``safetensors.torch.load_file``;
- the metadata holds the JSON of everything else, with ``{"tensor": name}`` where a
  tensor was, plus a SHA-256 of the tensor bytes and one of the JSON, so a truncated or
  altered file fails with :class:`~sparkgrad.errors.CheckpointError` instead of loading
  wrong numbers. The same object saved twice (tied weights) is stored once and comes back
  as one object.

The JSON encoding: ``None``, bools, ints, finite floats, strings and lists are JSON as
they are; everything else is an object with one tag: ``{"tuple": [...]}``,
``{"dict": [[key, value], ...]}`` (keys keep their type and order), ``{"odict": ...}``,
``{"float": "nan"}``, ``{"tensor": name, "device": "cuda", "requires_grad": true,
"parameter": true}`` (options only when they apply), ``{"ndarray": name}``,
``{"npscalar": name}``.

Writing to a path goes to a temporary name in the same directory, then is renamed: a
crash never leaves half a file. A file object is written (or read) as it is.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections import OrderedDict
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import cuda_is_available, normalize_device, to_device, to_numpy
from sparkgrad.autodiff.nn.parameter import Parameter
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import CheckpointError
from sparkgrad.export.safetensors_io import (
    DIGEST_KEY,
    parse_safetensors,
    tensor_digest,
    write_atomic,
)

FORMAT_KEY, FORMAT = "sparkgrad.format", "sparkgrad.save/1"
STRUCTURE_KEY = "sparkgrad.structure"
STRUCTURE_DIGEST_KEY = "sparkgrad.structure.sha256"
_ARRAY_TAGS = ("tensor", "ndarray", "npscalar")
#: what a safetensors file can hold (NumPy's side of it)
_STORABLE = {np.dtype(t) for t in ("?", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8")} | {
    np.dtype(t) for t in ("f2", "f4", "f8", "c8")
}


def _where(path: tuple) -> str:
    return "obj" + "".join(f"[{k!r}]" for k in path)


def _native(array: np.ndarray, path: tuple) -> np.ndarray:
    """A C-contiguous, little-endian copy-if-needed that safetensors can store."""
    if array.dtype.newbyteorder("=") not in _STORABLE:
        raise TypeError(
            f"sg.save cannot store {_where(path)}: an array of dtype {array.dtype} "
            "(safetensors stores bool, integer, float16/32/64 and complex64 arrays)"
        )
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("="))
    return np.asarray(array, order="C")  # (ascontiguousarray would make 0-d arrays 1-d)


class _Encoder:
    """Walks the object once: JSON-able structure out, arrays collected by name."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.seen: dict[int, dict] = {}  # id -> node, for objects stored twice
        self.keep: list[Any] = []  # keeps those objects alive while ids are in use

    def _name(self, path: tuple) -> str:
        base = ".".join(str(k) for k in path) or "obj"
        name, k = base, 1
        while name in self.arrays or name == "__metadata__":
            name, k = f"{base}#{k}", k + 1
        return name

    def _array(self, obj: Any, tag: str, array: np.ndarray, path: tuple, **options: Any) -> dict:
        if id(obj) in self.seen:
            return self.seen[id(obj)]
        name = self._name(path)
        self.arrays[name] = _native(array, path)
        node = {tag: name, **{k: v for k, v in options.items() if v}}
        self.seen[id(obj)] = node
        self.keep.append(obj)
        return node

    def encode(self, obj: Any, path: tuple = ()) -> Any:
        kind = type(obj)
        if obj is None or kind in (bool, int, str):
            return obj
        if kind is float:
            return obj if math.isfinite(obj) else {"float": repr(obj)}
        if isinstance(obj, Tensor):
            return self._array(
                obj,
                "tensor",
                to_numpy(obj.array),
                path,
                device=obj.device if obj.device != "cpu" else None,
                requires_grad=obj.requires_grad,
                parameter=isinstance(obj, Parameter),
            )
        if kind is np.ndarray:
            return self._array(obj, "ndarray", obj, path)
        if isinstance(obj, np.generic) and kind.__module__ == "numpy":
            return self._array(obj, "npscalar", np.asarray(obj), path)
        if kind is list:
            return [self.encode(v, (*path, i)) for i, v in enumerate(obj)]
        if kind is tuple:
            return {"tuple": [self.encode(v, (*path, i)) for i, v in enumerate(obj)]}
        if kind in (dict, OrderedDict):
            items = []
            for key, value in obj.items():
                if type(key) not in (str, int):
                    raise TypeError(
                        f"sg.save cannot store {_where(path)}: a dict key {key!r} of type "
                        f"{type(key).__name__} (keys must be str or int)"
                    )
                items.append([key, self.encode(value, (*path, key))])
            return {"dict" if kind is dict else "odict": items}
        raise TypeError(
            f"sg.save cannot store {_where(path)}: an object of type {kind.__qualname__} "
            "(it stores dicts, lists, tuples, Tensors, NumPy arrays, numbers, bools, None "
            "and strings; it never pickles). Save its state_dict() or plain values instead"
        )


def _payload(obj: Any) -> bytes:
    from safetensors import SafetensorError
    from safetensors.numpy import save as save_arrays

    encoder = _Encoder()
    structure = json.dumps(encoder.encode(obj), separators=(",", ":"), allow_nan=False)
    metadata = {
        FORMAT_KEY: FORMAT,
        STRUCTURE_KEY: structure,
        STRUCTURE_DIGEST_KEY: hashlib.sha256(structure.encode()).hexdigest(),
        DIGEST_KEY: tensor_digest(encoder.arrays),
    }
    try:
        return save_arrays(encoder.arrays, metadata=metadata)
    except SafetensorError as exc:  # dtypes are checked before, so this is unexpected
        raise TypeError(f"sg.save: safetensors refused the tensors: {exc}") from None


def save(obj: Any, f: Any) -> None:
    """Store ``obj`` in the file ``f`` (a path, or a binary file object), never pickling.

    A path is written atomically (temporary name in the same directory, then renamed).
    """
    payload = _payload(obj)
    if isinstance(f, (str, os.PathLike)):
        write_atomic(f, payload)
    elif callable(getattr(f, "write", None)):
        f.write(payload)
    else:
        raise TypeError(f"sg.save: expected a path or a binary file object, found {type(f)}")


def _target_device(saved: str, map_location: Any) -> str:
    """The device a tensor saved on ``saved`` is loaded onto."""
    if map_location is None:
        return saved
    if isinstance(map_location, dict):
        table = {normalize_device(k): v for k, v in map_location.items()}
        return normalize_device(table.get(saved, saved))
    if callable(map_location):
        raise TypeError(
            "sg.load: map_location must be None, a device ('cpu', 'cuda', sg.device) or a "
            "dict {saved device: new device}; functions are not supported"
        )
    return normalize_device(str(map_location))


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray], map_location: Any, name: str) -> None:
        self.arrays, self.map_location, self.name = arrays, map_location, name
        self.made: dict[tuple, Any] = {}  # (tag, name) -> object, for objects stored twice

    def damaged(self, what: str) -> CheckpointError:
        return CheckpointError(f"{self.name}: damaged sg.save structure ({what})")

    def _array(self, node: dict, tag: str) -> Any:
        key = node[tag]
        if (tag, key) in self.made:
            return self.made[(tag, key)]
        if key not in self.arrays:
            raise self.damaged(f"it refers to a tensor {key!r} that is not in the file")
        array = self.arrays[key]
        if tag == "ndarray":
            out = array
        elif tag == "npscalar":
            out = array[()]
        else:
            device = _target_device(node.get("device", "cpu"), self.map_location)
            if device == "cuda" and not cuda_is_available():
                raise CheckpointError(
                    f"{self.name}: a tensor was saved on CUDA but CUDA is not available "
                    "here; load with map_location='cpu'"
                )
            data = to_device(array, device)
            grad = bool(node.get("requires_grad"))
            out = Parameter(data, requires_grad=grad) if node.get("parameter") else Tensor(data)
            if grad and not node.get("parameter"):
                out.requires_grad_(True)
        self.made[(tag, key)] = out
        return out

    def decode(self, node: Any) -> Any:
        if node is None or type(node) in (bool, int, float, str):
            return node
        if type(node) is list:
            return [self.decode(v) for v in node]
        if type(node) is not dict or len(node) < 1:
            raise self.damaged(f"unexpected node {str(node)[:60]}")
        tag = next(iter(node))
        if tag in _ARRAY_TAGS:
            return self._array(node, tag)
        value = node[tag]
        if len(node) != 1:
            raise self.damaged(f"node {tag!r} has extra fields")
        if tag == "tuple" and type(value) is list:
            return tuple(self.decode(v) for v in value)
        if tag in ("dict", "odict") and type(value) is list:
            pairs = []
            for item in value:
                if type(item) is not list or len(item) != 2 or type(item[0]) not in (str, int):
                    raise self.damaged(f"bad dict item {str(item)[:60]}")
                pairs.append((item[0], self.decode(item[1])))
            return dict(pairs) if tag == "dict" else OrderedDict(pairs)
        if tag == "float" and value in ("nan", "inf", "-inf"):
            return float(value)
        raise self.damaged(f"unknown node {tag!r}")


def _read(f: Any) -> tuple[bytes, str]:
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as file:
            return file.read(), repr(os.fspath(f))
    if callable(getattr(f, "read", None)):
        return f.read(), "<file object>"
    raise TypeError(f"sg.load: expected a path or a binary file object, found {type(f)}")


def load(f: Any, map_location: Any = None, *, weights_only: bool = True, mmap: Any = None) -> Any:
    """The object :func:`save` stored in ``f`` (a path or a binary file object).

    ``map_location``: ``None`` puts each tensor back on the device it was saved from;
    ``"cpu"``, ``"cuda"`` or a device puts every tensor there; a dict maps saved devices to
    new ones (``{"cuda": "cpu"}``). ``weights_only`` is accepted for PyTorch's signature
    and changes nothing: nothing is ever unpickled, so loading never runs code. ``mmap``
    is accepted and ignored (the file is read into memory).
    """
    raw, name = _read(f)
    try:
        arrays, metadata = parse_safetensors(raw, name)
    except CheckpointError:
        if raw[:4] == b"PK\x03\x04" or (raw[:1] == b"\x80" and raw[1:2] in b"\x02\x03\x04\x05"):
            raise CheckpointError(
                f"{name} looks like a PyTorch checkpoint (torch.save: a pickle); sparkgrad "
                "never unpickles. Convert it in PyTorch, e.g. safetensors.torch.save_file("
                "state_dict, path), and load that with sparkgrad.export.load_safetensors"
            ) from None
        raise
    if metadata.get(FORMAT_KEY) != FORMAT or STRUCTURE_KEY not in metadata:
        raise CheckpointError(
            f"{name} is a safetensors file but not one written by sg.save (no "
            f"{FORMAT_KEY}={FORMAT!r} metadata); read its tensors with "
            "sparkgrad.export.load_safetensors or safetensors.numpy.load_file"
        )
    structure = metadata[STRUCTURE_KEY]
    if hashlib.sha256(structure.encode()).hexdigest() != metadata.get(STRUCTURE_DIGEST_KEY):
        raise CheckpointError(
            f"{name}: the structure does not match the SHA-256 stored with it: the file was "
            "altered after it was written"
        )
    try:
        tree = json.loads(structure)
    except ValueError as exc:
        raise CheckpointError(f"{name}: damaged sg.save structure ({exc})") from None
    return _Decoder(arrays, map_location, name).decode(tree)

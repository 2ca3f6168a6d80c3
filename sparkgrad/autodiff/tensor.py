"""``Tensor``: an array (NumPy or CuPy) plus what autograd needs to differentiate it.

A tensor is a leaf (made by you: data, weights) or the output of an op, in which case
``_node`` remembers the op and its inputs. ``backward()`` walks those nodes in reverse
(see :mod:`sparkgrad.autodiff.graph`). Arithmetic operators and methods such as
``x.relu()`` are thin forwards to :mod:`sparkgrad.autodiff.functional`, where each op lives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import (
    DEFAULT_DTYPE,
    device_of,
    get_array_module,
    is_floating,
    to_device,
    to_numpy,
)
from sparkgrad.autodiff.grad_mode import is_grad_enabled
from sparkgrad.errors import GradError


def _as_array(data: Any, dtype: Any, device: str | None) -> Any:
    """Convert lists, scalars and arrays into a backend array with PyTorch's dtype rules."""
    if isinstance(data, Tensor):
        data = data.array
    if isinstance(data, np.generic):  # np.float32(1.5) -> a 0-d array, as torch.tensor makes
        data = np.asarray(data)
    if device is None:
        device = device_of(data)
    xp = get_array_module(device)
    if dtype is not None:
        return xp.asarray(to_device(data, device) if hasattr(data, "shape") else data, dtype=dtype)
    if hasattr(data, "dtype"):
        return to_device(data, device)
    arr = np.asarray(data)
    if arr.dtype == np.float64:  # Python floats become float32, as in PyTorch
        arr = arr.astype(DEFAULT_DTYPE)
    elif arr.dtype.kind in "iu":
        arr = arr.astype(np.int64)
    return to_device(arr, device)


class Tensor:
    """An n-dimensional array that can record the ops applied to it for backward."""

    __slots__ = (
        "array",
        "requires_grad",
        "grad",
        "_node",
        "_hooks",
        "_post_hooks",
        "_retains_grad",
        "__weakref__",
        "__dict__",
    )
    __array_priority__ = 1000  # ndarray (op) Tensor -> Tensor's reflected operator

    def __init__(
        self, data: Any, requires_grad: bool = False, dtype: Any = None, device: str | None = None
    ) -> None:
        self.array = _as_array(data, dtype, device)
        self.grad: Tensor | None = None
        self._node = None
        self._hooks: list[Callable] = []
        self._post_hooks: list[Callable] = []
        self._retains_grad = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array: Any) -> Tensor:
        """Fast constructor for op results: no conversion, no checks.

        One exception: NumPy turns 0-d results into scalars (``np.float32``), which cannot
        be updated in place; they become 0-d arrays again here.
        """
        if type(array) is not np.ndarray and isinstance(array, np.generic):
            array = np.asarray(array)
        t = object.__new__(Tensor)
        t.array = array
        t.requires_grad = False
        t.grad = None
        t._node = None
        t._hooks = []
        t._post_hooks = []
        t._retains_grad = False
        return t

    # ---- what it is -----------------------------------------------------------------
    @property
    def data(self) -> Tensor:
        """The values as a Tensor outside autograd, sharing storage (PyTorch's ``.data``).

        ``p.data.add_(u)`` changes ``p`` without recording anything; prefer
        ``with sg.no_grad():`` (``.data`` is also invisible to the in-place checks).
        """
        return Tensor._wrap(self.array)

    @data.setter
    def data(self, value: Any) -> None:
        self.array = value.array if isinstance(value, Tensor) else value

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def device(self) -> str:
        return device_of(self.array)

    @property
    def is_leaf(self) -> bool:
        """True for tensors you made yourself (and results of ops that needed no grad)."""
        return self._node is None

    @property
    def grad_fn(self) -> Any:
        """The recorded op that produced this tensor (``None`` for leaves)."""
        return self._node

    @property
    def T(self) -> Tensor:  # noqa: N802 - PyTorch's name
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim: int | None = None) -> Any:
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self.array.size)

    def __len__(self) -> int:
        return self.shape[0]

    # ---- leaving autograd -----------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (copied from the GPU if needed)."""
        if self.requires_grad and is_grad_enabled():
            raise GradError(
                "Can't call numpy() on a Tensor that requires grad. Use .detach().numpy()"
            )
        return to_numpy(self.array)

    def item(self) -> float | int | bool:
        if self.array.size != 1:
            raise ValueError(f"item() needs a tensor with one element, found shape {self.shape}")
        return self.array.reshape(()).item()

    def tolist(self) -> Any:
        return to_numpy(self.array).tolist()

    def detach(self) -> Tensor:
        """The same values, cut from the graph (shares memory, as in PyTorch)."""
        return Tensor._wrap(self.array)

    def clone(self) -> Tensor:
        from sparkgrad.autodiff import functional as F

        return F.clone(self)

    def to(self, device_or_dtype: Any = None, dtype: Any = None) -> Tensor:
        """``t.to("cuda")``, ``t.to(np.float64)`` or ``t.to("cpu", np.float32)``."""
        device = None
        if isinstance(device_or_dtype, str):
            device = device_or_dtype
        elif device_or_dtype is not None:
            dtype = device_or_dtype
        out = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            from sparkgrad.autodiff import functional as F

            out = F.cast(out, dtype)
        if device is not None and device_of(out.array) != device.split(":")[0]:
            from sparkgrad.autodiff import functional as F

            out = F.move(out, device)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def long(self) -> Tensor:
        return self.to(np.int64)

    # ---- autograd -----------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not is_floating(self.dtype):
            raise GradError(
                f"only floating point tensors can require gradients; found dtype {self.dtype}. "
                "Convert first, e.g. x.float()"
            )
        if not requires_grad and not self.is_leaf:
            raise GradError("you can only change requires_grad of leaf tensors; use .detach()")
        self.requires_grad = requires_grad
        return self

    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad."""
        from sparkgrad.autodiff.graph import backward

        backward(self, gradient, retain_graph=retain_graph)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> Callable[[], None]:
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a new one.

        Returns a function that removes the hook (PyTorch returns a handle with ``.remove()``).
        """
        if not self.requires_grad:
            raise GradError("cannot register a hook on a tensor that doesn't require gradient")
        self._hooks.append(hook)
        return _Removable(self._hooks, hook)

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> Any:
        """Call ``hook(tensor)`` on a leaf right after its ``.grad`` was accumulated.

        DataParallel uses this to launch a bucket's all_reduce while backward goes on.
        """
        if not self.is_leaf:
            raise GradError("post accumulate grad hooks can only be registered on leaf tensors")
        self._post_hooks.append(hook)
        return _Removable(self._post_hooks, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        self._retains_grad = True

    # ---- in-place updates (no graph: for optimizers, initialisers, collectives) --------
    def _check_inplace(self) -> None:
        if self.requires_grad and self.is_leaf and is_grad_enabled():
            raise GradError(
                "a leaf Variable that requires grad is being used in an in-place operation; "
                "wrap the update in `with sg.no_grad():`"
            )

    def _value(self, other: Any) -> Any:
        return other.array if isinstance(other, Tensor) else other

    def copy_(self, src: Any) -> Tensor:
        """Overwrite the values with ``src`` (a tensor, array or number), across devices."""
        self._check_inplace()
        value = self._value(src)
        self.array[...] = to_device(value, self.device) if hasattr(value, "shape") else value
        return self

    def zero_(self) -> Tensor:
        self._check_inplace()
        self.array.fill(0)
        return self

    def fill_(self, value: float) -> Tensor:
        self._check_inplace()
        self.array.fill(value)
        return self

    def add_(self, other: Any, alpha: float = 1.0) -> Tensor:
        self._check_inplace()
        other = self._value(other)
        self.array += other if alpha == 1.0 else alpha * other
        return self

    def sub_(self, other: Any, alpha: float = 1.0) -> Tensor:
        return self.add_(other, alpha=-alpha)

    def mul_(self, other: Any) -> Tensor:
        self._check_inplace()
        self.array *= self._value(other)
        return self

    def div_(self, other: Any) -> Tensor:
        self._check_inplace()
        self.array /= self._value(other)
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        self._check_inplace()
        self.array[index] = self._value(value)

    # ---- printing -------------------------------------------------------------------
    def __repr__(self) -> str:
        body = np.array2string(to_numpy(self.array), separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.dtype not in (np.float32, np.int64, np.bool_):
            extras.append(f"dtype={self.dtype}")
        if self._node is not None:
            extras.append(f"grad_fn=<{self._node.name()}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + ", ".join([body, *extras]) + ")"

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = to_numpy(self.array)
        return arr if dtype is None else arr.astype(dtype)


class _Removable:
    """Handle returned by hook registration: ``handle.remove()`` (or call it) removes the hook."""

    def __init__(self, hooks: list, hook: Callable) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)

    __call__ = remove


# Operators and methods are attached in one place, next to the ops they call.
from sparkgrad.autodiff import tensor_methods as _tensor_methods  # noqa: E402

_tensor_methods.install(Tensor)

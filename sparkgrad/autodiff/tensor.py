"""``Tensor``: an array (NumPy or CuPy) plus what autograd needs to differentiate it.

A tensor is a leaf (made by you: data, weights) or the output of an op, in which case
``grad_fn`` is the recorded op (a :class:`~sparkgrad.autodiff.function.Node`) whose edges
lead back to the leaves. ``backward()`` walks those nodes in reverse (see
:mod:`sparkgrad.autodiff.graph`). Arithmetic operators and methods such as ``x.relu()``
are listed in the base class :class:`~sparkgrad.autodiff.tensor_methods.TensorMethods`:
thin forwards to :mod:`sparkgrad.autodiff.functional`, where each op lives; in-place
updates (``x += 1``, ``x[0] = 2``, ``x.add_(y)``) live in :mod:`sparkgrad.autodiff.inplace`;
``to``/``float``/``cuda``... in :class:`~sparkgrad.autodiff.tensor_conversions.TensorConversions`.

The values are ``t.array``, a NumPy or CuPy array. ``t.data`` is PyTorch's ``.data``: the
same storage as a Tensor that autograd does not see.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import (
    device_of,
    get_array_module,
    is_floating,
    to_device,
    to_numpy,
)
from sparkgrad.autodiff.dtypes import get_default_dtype
from sparkgrad.autodiff.grad_mode import is_grad_enabled
from sparkgrad.autodiff.tensor_conversions import TensorConversions
from sparkgrad.autodiff.tensor_methods import TensorMethods
from sparkgrad.autodiff.versions import VersionCounter
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
    if arr.dtype == np.float64:  # Python floats take the default dtype (float32), as PyTorch
        arr = arr.astype(get_default_dtype())
    elif arr.dtype.kind in "iu":
        arr = arr.astype(np.int64)
    return to_device(arr, device)


class Size(tuple):
    """A shape: a tuple of ints, with ``numel()`` as ``torch.Size`` has (printed as a tuple)."""

    def numel(self) -> int:
        n = 1
        for d in self:
            n *= d
        return n


class Tensor(TensorConversions, TensorMethods):
    """An n-dimensional array that can record the ops applied to it for backward."""

    __slots__ = (
        "array",  # the values: a NumPy or CuPy array
        "requires_grad",
        "grad",
        "_node",  # the op that made it (grad_fn), None for a leaf
        "_hooks",  # register_hook functions of a leaf (a non-leaf keeps them on its node)
        "_post_hooks",
        "_version_counter",  # shared with every tensor viewing the same storage
        "_base",  # the tensor this one is a view of (None if it owns its storage)
        "_view_op",  # (Function, kwargs) that made the view, to replay or write back
        "_node_version",  # the storage version when _node was recorded
        "_output_nr",  # which output of _node this is (custom Functions may have several)
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
        self._version_counter = VersionCounter()
        self._base = self._view_op = None
        self._node_version = self._output_nr = 0
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
        t._version_counter = VersionCounter()
        t._base = t._view_op = None
        t._node_version = t._output_nr = 0
        return t

    def _set_node(self, node: Any) -> None:
        """Record ``node`` as the op that made the current values."""
        self._node = node
        self._node_version = self._version_counter.value

    def _share_storage_with(self, base: Tensor, view_op: Any = None) -> None:
        """Mark this tensor as a view of ``base``: one version counter for both."""
        self._version_counter = base._version_counter
        self._base, self._view_op = base, view_op
        self._node_version = self._version_counter.value

    # ---- what it is -----------------------------------------------------------------
    @property
    def data(self) -> Tensor:
        """The values as a Tensor outside autograd, sharing storage (PyTorch's ``.data``).

        ``p.data.add_(u)`` changes ``p`` without recording anything and without the
        in-place checks (a separate version counter): prefer ``with sg.no_grad():``.
        """
        return Tensor._wrap(self.array)

    @data.setter
    def data(self, value: Any) -> None:
        self.array = value.array if isinstance(value, Tensor) else value

    @property
    def shape(self) -> Size:
        return Size(self.array.shape)

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
    def _version(self) -> int:
        """How many in-place updates the storage has seen (PyTorch's ``t._version``)."""
        return self._version_counter.value

    @property
    def is_cuda(self) -> bool:
        return self.device == "cuda"

    @property
    def T(self) -> Tensor:  # noqa: N802 - PyTorch's name
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self) -> Tensor:  # noqa: N802 - PyTorch's name
        return self.transpose(-2, -1)

    def size(self, dim: int | None = None) -> Any:
        return self.shape if dim is None else self.array.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self.array.size)

    nelement = numel

    def element_size(self) -> int:
        return int(self.array.itemsize)

    def is_floating_point(self) -> bool:
        return is_floating(self.dtype)

    def is_contiguous(self) -> bool:
        return bool(self.array.flags.c_contiguous)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self) -> Any:
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

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
        """The same values, cut from the graph (shares memory and version, as in PyTorch)."""
        out = Tensor._wrap(self.array)
        out._version_counter = self._version_counter
        return out

    def detach_(self) -> Tensor:
        """Cut this tensor from the graph it was made by (it becomes a leaf)."""
        self._node = None
        self.requires_grad = False
        return self

    def clone(self) -> Tensor:
        from sparkgrad.autodiff import functional as F

        return F.clone(self)

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

    def backward(
        self, gradient: Any = None, retain_graph: bool | None = None, inputs: Any = None
    ) -> None:
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad."""
        from sparkgrad.autodiff.graph import backward

        backward([self], [gradient], retain_graph=bool(retain_graph), inputs=inputs)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> Callable[[], None]:
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a new one.

        Returns a handle whose ``.remove()`` (or a call) removes the hook.
        """
        if not self.requires_grad:
            raise GradError("cannot register a hook on a tensor that doesn't require gradient")
        hooks = self._hooks if self._node is None else self._node.hooks
        hooks.append(hook)
        return _Removable(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> Any:
        """Call ``hook(tensor)`` on a leaf right after its ``.grad`` was accumulated.

        DataParallel uses this to launch a bucket's all_reduce while backward goes on.
        """
        if not self.is_leaf:
            raise GradError("post accumulate grad hooks can only be registered on leaf tensors")
        self._post_hooks.append(hook)
        return _Removable(self._post_hooks, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward (a no-op on leaves)."""
        if not self.requires_grad:
            raise GradError("can't retain_grad on Tensor that has requires_grad=False")
        if self._node is not None:
            self._node.retained = weakref.ref(self)

    @property
    def retains_grad(self) -> bool:
        node = self._node
        return node is not None and node.retained is not None and node.retained() is self

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

    def __format__(self, spec: str) -> str:
        """``f"{loss:.4f}"`` formats a 0-d tensor's value, exactly where PyTorch does."""
        if self.ndim == 0:
            return format(self.item(), spec)
        if spec:
            raise TypeError("unsupported format string passed to Tensor.__format__")
        return repr(self)

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        if self.array.size != 1:
            raise RuntimeError(
                f"Boolean value of Tensor with more than one value is ambiguous "
                f"(shape {self.shape}); use .any() or .all()"
            )
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.array.size != 1 or self.dtype.kind not in "iub":
            raise TypeError("only integer tensors of a single element can be converted to an index")
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

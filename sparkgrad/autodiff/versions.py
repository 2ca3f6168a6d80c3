"""Version counters: how autograd notices that an in-place update broke a saved value.

Every tensor's storage has a counter that each in-place update (``x.add_(1)``, ``x[0] = 2``,
``x += y``) increases. Tensors that share storage share the counter: a view (``x[1:3]``,
``x.reshape(...)``, ``x.T``), ``x.detach()``. (``x.data`` gets a counter of its own, as in
PyTorch: that is what makes it the "unsafe" way round the checks.)

When an op saves an input (or its output) for backward, its node remembers that tensor's
version (:class:`SavedVersion`). If the version has moved on when backward runs, the saved
array no longer holds the values the forward pass used, and backward raises PyTorch's
error instead of computing a silently wrong gradient::

    y = x.exp()      # Exp saves its output y
    y += 1           # version of y: 0 -> 1
    y.sum().backward()
    # GradError: one of the variables needed for gradient computation has been modified
    # by an inplace operation: [FloatTensor [3]], which is output 0 of ExpBackward, is at
    # version 1; expected version 0 instead.

Views also use the counter to notice that *their base* was updated in place after they
were made: their recorded history is stale, and :func:`refresh_if_stale` re-derives it
from the base, the way PyTorch regenerates a view's ``grad_fn``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.errors import GradError

TORCH_TYPE_NAMES = {
    "float16": "Half",
    "float32": "Float",
    "float64": "Double",
    "int8": "Char",
    "int16": "Short",
    "int32": "Int",
    "int64": "Long",
    "uint8": "Byte",
    "bool": "Bool",
}


def torch_type_name(dtype: Any) -> str:
    """PyTorch's short name of a dtype (``Float`` for float32), as its messages use."""
    return TORCH_TYPE_NAMES.get(np.dtype(dtype).name, np.dtype(dtype).name)


class VersionCounter:
    """How many times the storage was updated in place (shared by every view of it)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def bump(self) -> None:
        self.value += 1


class SavedVersion:
    """A tensor an op saved, and the version it had then (checked when backward runs)."""

    __slots__ = ("counter", "version", "shape", "dtype", "role", "producer")

    def __init__(self, counter: VersionCounter, shape: tuple, dtype: Any, role: str) -> None:
        self.counter, self.version = counter, counter.value
        self.shape, self.dtype, self.role = shape, dtype, role
        self.producer: Any = None

    @classmethod
    def of(cls, t: Any, role: str) -> SavedVersion:
        saved = cls(t._version_counter, t.shape, t.dtype, role)
        if role == "input":  # (an output's producer is the node itself: no cycle kept)
            saved.producer = t._node
        return saved

    def check(self, node: Any) -> None:
        """Raise PyTorch's error if the saved storage was overwritten since it was saved."""
        if self.counter.value == self.version:
            return
        made_by = node if self.role == "output" else self.producer
        origin = f"output 0 of {made_by.name()}" if made_by is not None else "a leaf"
        shape = ", ".join(str(n) for n in self.shape)
        raise GradError(
            "one of the variables needed for gradient computation has been modified by an "
            f"inplace operation: [{torch_type_name(self.dtype)}Tensor [{shape}]], which is "
            f"{origin}, is at version {self.counter.value}; expected version {self.version} "
            "instead. Hint: make the update out of place (y = y + 1), or clone() the tensor "
            "before updating it."
        )


def refresh_if_stale(view: Any) -> None:
    """Re-derive a view's history from its base if the base was updated in place since.

    ``v = y[0:2]`` records ``GetItem(y)``. After ``y.mul_(2)`` the values of ``v`` (shared
    storage) are the new ones, but its node still points at the old ``y``: using ``v`` as
    it is would send gradients down the wrong path. So, like PyTorch, the view's node is
    made again from the base's current one.
    """
    if view._view_op is None or view._node_version == view._version_counter.value:
        return  # a view made under no_grad has no history to refresh
    base = view._base
    if base._base is not None:
        refresh_if_stale(base)
    op, kwargs = view._view_op
    fresh = op.apply(base, **kwargs)
    view._node = fresh._node
    view.requires_grad = fresh.requires_grad
    view._node_version = view._version_counter.value

"""In-place updates: ``x += y``, ``x.add_(y)``, ``x[0] = 2``, ``x.zero_()`` — the same tensor
object, the same storage, new values.

A learner's first training loop is ``with sg.no_grad(): w -= lr * w.grad``: that must change
``w`` itself (an optimizer built on ``w``, a view of ``w``, a DDP bucket all see the new
values), not bind the name ``w`` to a new tensor. Every update here goes through
:func:`update_in_place`, which follows PyTorch's rules:

1. **Nothing is being recorded** (``no_grad``, or neither the tensor nor the operands need a
   gradient): compute the new values and write them into the storage. The version counter
   goes up (:mod:`.versions`), so backward notices if a value it saved was overwritten.
2. **A graph is being recorded**:

   - a *leaf* that requires grad may not be updated (its ``.grad`` would be the gradient of
     a value that no longer exists): PyTorch's "a leaf Variable that requires grad is being
     used in an in-place operation". The same for a view of such a leaf.
   - otherwise the update is recorded as an op: ``x.mul_(2)`` records ``x_new = x_old * 2``
     (on a copy of the old values, so the op's saved inputs stay valid), writes ``x_new``
     into ``x``'s storage, and makes that op ``x.grad_fn``. Nodes recorded earlier still
     point at the op that made ``x_old`` (the graph's edges lead to nodes, not tensors).
   - if ``x`` is a view (``x = y[1:3]``), the update is also written back into the graph of
     its base: ``y_new = IndexPut(y_old, x_new)``, which is what makes ``y[1:3] += u``
     differentiable, as in PyTorch.

Python turns ``x += y`` into ``x = x.__iadd__(y)``; ``__iadd__`` returns ``x`` itself, so the
name stays bound to the same tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import to_device
from sparkgrad.autodiff.grad_mode import is_grad_enabled, no_grad
from sparkgrad.autodiff.ops import shape as sh
from sparkgrad.autodiff.random import default_generator
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.autodiff.versions import refresh_if_stale, torch_type_name
from sparkgrad.errors import GradError, InPlaceError, ShapeError


def update_in_place(
    t: Tensor, compute: Callable[[Tensor], Tensor], operands: Sequence[Any] = ()
) -> Tensor:
    """``t <- compute(t)`` in place (see the module docstring); returns ``t``."""
    if not _records(t, operands):
        with no_grad():
            new = compute(t)
        _write(t, new.array)
        return t
    _check_may_record(t)
    if t._base is not None:
        refresh_if_stale(t)
    new = compute(_snapshot(t))
    _write(t, new.array)
    _take_history(t, new)
    if t._base is not None:
        _write_back_into_base(t)
    return t


def _records(t: Tensor, operands: Sequence[Any]) -> bool:
    """Whether this update becomes part of a recorded graph."""
    if not is_grad_enabled():
        return False
    return t.requires_grad or any(isinstance(o, Tensor) and o.requires_grad for o in operands)


def _check_may_record(t: Tensor) -> None:
    """PyTorch's rules for in-place updates while a graph is being recorded."""
    if t.is_leaf and t.requires_grad:
        raise GradError(
            "a leaf Variable that requires grad is being used in an in-place operation. "
            "Update weights inside `with sg.no_grad():` (or use an optimizer)"
        )
    root = t
    while root._base is not None:
        if root._view_op is None:
            raise GradError(
                "A view was created in no_grad mode and is being modified inplace with grad "
                "mode enabled; make the view with grad mode enabled, or update it under no_grad"
            )
        root = root._base
    if root is not t and root.is_leaf and root.requires_grad:
        raise GradError(
            "a view of a leaf Variable that requires grad is being used in an in-place "
            "operation. Update it inside `with sg.no_grad():`"
        )


def _snapshot(t: Tensor) -> Tensor:
    """A copy of ``t``'s current values that carries ``t``'s history (the "old" ``t``)."""
    old = Tensor._wrap(t.array.copy())
    old.requires_grad, old._node = t.requires_grad, t._node
    return old


def _write(t: Tensor, values: Any) -> None:
    """Write ``values`` into ``t``'s storage (PyTorch's dtype and shape rules); bump the version."""
    if tuple(values.shape) != t.shape:
        raise ShapeError(
            f"output with shape {list(t.shape)} doesn't match the broadcast shape "
            f"{list(values.shape)}"
        )
    if not np.can_cast(values.dtype, t.dtype, casting="same_kind"):
        raise InPlaceError(
            f"result type {torch_type_name(values.dtype)} can't be cast to the desired output "
            f"type {torch_type_name(t.dtype)}"
        )
    _check_writeable(t)
    t.array[...] = to_device(values, t.device)
    t._version_counter.bump()


def _check_writeable(t: Tensor) -> None:
    if not t.array.flags.writeable:
        raise InPlaceError(
            "unsupported operation: more than one element of the written-to tensor refers to "
            "a single memory location (an expanded tensor). Please clone() the tensor before "
            "performing the operation."
        )


def _take_history(t: Tensor, new: Tensor) -> None:
    """``t`` is now the output of the recorded update (``retain_grad`` moves along)."""
    old_node = t._node
    t.requires_grad = True
    t._set_node(new._node)
    if old_node is not None and old_node.retained is not None and old_node.retained() is t:
        t._node.retained, old_node.retained = old_node.retained, None


def _write_back_into_base(view: Tensor) -> None:
    """Record in the base's graph that the part ``view`` covers now holds ``view``'s values."""
    base = view._base
    if base._base is not None:
        refresh_if_stale(base)
    op, kwargs = view._view_op
    old_base = Tensor._wrap(base.array)  # values are already the new ones; only routing matters
    old_base.requires_grad, old_base._node = base.requires_grad, base._node
    new_base = op.write_back(old_base, view, **kwargs)
    base.requires_grad = True
    base._set_node(new_base._node)
    view._node_version = view._version_counter.value
    if base._base is not None:
        _write_back_into_base(base)


# ---- the in-place methods of Tensor ---------------------------------------------------
def raw_index(index: Any, device: str = "cpu") -> Any:
    """An index with Tensors and lists turned into arrays on ``device`` (the indexed tensor's).

    A host index into GPU data is copied to the GPU here, once: left on the host, CuPy would
    copy it again in every op that reads it (the forward, and the backward's scatter).
    """

    def part(i: Any) -> Any:
        if isinstance(i, Tensor):
            i = i.array
        elif isinstance(i, list):
            i = np.asarray(i)
        return to_device(i, device) if hasattr(i, "shape") else i

    return tuple(part(i) for i in index) if isinstance(index, tuple) else part(index)


def setitem(t: Tensor, index: Any, value: Any) -> None:
    """``t[index] = value``: slices, integers, integer and boolean masks; differentiable."""
    index = raw_index(index, t.device)
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if not _records(t, (value,)):
        array = value.array if isinstance(value, Tensor) else value
        _check_writeable(t)
        t.array[index] = to_device(array, t.device) if hasattr(array, "shape") else array
        t._version_counter.bump()
        return
    update_in_place(t, lambda old: sh.IndexPut.apply(old, value, index=index), (value,))


def add_(t: Tensor, other: Any, alpha: Any = 1) -> Tensor:
    """``t += alpha * other`` in place."""
    from sparkgrad.autodiff import functional as F

    if isinstance(alpha, Tensor) and not isinstance(other, Tensor):  # add_(alpha, other): old
        other, alpha = alpha, other  # form still found in tutorials
    return update_in_place(
        t, lambda old: F.add(old, other if alpha == 1 else F.mul(other, alpha)), (other,)
    )


def sub_(t: Tensor, other: Any, alpha: Any = 1) -> Tensor:
    """``t -= alpha * other`` in place."""
    from sparkgrad.autodiff import functional as F

    return update_in_place(
        t, lambda old: F.sub(old, other if alpha == 1 else F.mul(other, alpha)), (other,)
    )


def addcmul_(t: Tensor, tensor1: Any, tensor2: Any, value: Any = 1) -> Tensor:
    """``t += value * tensor1 * tensor2`` in place."""
    from sparkgrad.autodiff import functional as F

    product = lambda: F.mul(F.mul(tensor1, tensor2), value)  # noqa: E731
    return update_in_place(t, lambda old: F.add(old, product()), (tensor1, tensor2))


def addcdiv_(t: Tensor, tensor1: Any, tensor2: Any, value: Any = 1) -> Tensor:
    """``t += value * tensor1 / tensor2`` in place."""
    from sparkgrad.autodiff import functional as F

    ratio = lambda: F.mul(F.div(tensor1, tensor2), value)  # noqa: E731
    return update_in_place(t, lambda old: F.add(old, ratio()), (tensor1, tensor2))


def inplace_of(fn: Callable[..., Tensor], name: str) -> Callable[..., Tensor]:
    """The in-place method ``name`` (e.g. ``mul_``) made from the op ``fn`` (e.g. ``F.mul``)."""

    def method(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        operands = (*args, *kwargs.values())
        return update_in_place(self, lambda old: fn(old, *args, **kwargs), operands)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"In-place version of ``{fn.__name__}``: ``t = {fn.__name__}(t, ...)``."
    return method


def fill_(t: Tensor, value: Any) -> Tensor:
    """Every element becomes ``value`` (a number or a one-element tensor)."""
    if isinstance(value, Tensor):
        if value.array.size != 1:
            raise ShapeError(
                f"fill_ only supports 0-dimension value tensor but got tensor with "
                f"{value.ndim} dimensions"
            )
        value = value.array.reshape(()).item()
    return update_in_place(t, lambda old: sh.Fill.apply(old, value=value))


def zero_(t: Tensor) -> Tensor:
    return fill_(t, 0)


def copy_(t: Tensor, src: Any, non_blocking: bool = False) -> Tensor:
    """Overwrite the values with ``src`` (broadcast, cast to ``t``'s dtype, across devices)."""
    if isinstance(src, (list, tuple)):
        src = np.asarray(src)
    return update_in_place(t, lambda old: sh.Copy.apply(old, src), (src,))


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Values drawn from U(a, b) with the seeded generator."""
    draws = to_device(default_generator().uniform(a, b, t.shape).astype(t.dtype), t.device)
    return update_in_place(t, lambda old: sh.Fill.apply(old, value=draws))


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Values drawn from N(mean, std²) with the seeded generator."""
    draws = to_device(default_generator().normal(mean, std, t.shape).astype(t.dtype), t.device)
    return update_in_place(t, lambda old: sh.Fill.apply(old, value=draws))

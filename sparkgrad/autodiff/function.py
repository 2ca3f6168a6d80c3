"""``Function``: one differentiable op, its forward and its backward side by side.

An op is a subclass with two static methods over *raw arrays* (NumPy or CuPy)::

    class Mul(Function):
        '''z = a * b;  dz/da = b, dz/db = a'''

        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            return a * b

        @staticmethod
        def backward(ctx, grad):
            a, b = ctx.saved_tensors
            return grad * b, grad * a

``Mul.apply(x, y)`` unwraps the tensors, runs ``forward``, wraps the result and, when a
graph is being recorded, leaves a :class:`Node` on it (PyTorch's ``grad_fn``) so that
:mod:`.graph` can call ``backward`` later. ``backward`` returns one gradient per positional
input (``None`` for non-tensors or inputs that need none) in the *broadcast* shape; the
engine reduces it back to the input shape in one central place
(:func:`sparkgrad.autodiff.graph.sum_to_shape`).

The graph is made of nodes, not of tensors: a node's ``edges`` point at the nodes that
made its inputs (or at the input itself when it is a leaf). So a tensor can be updated in
place later — its ``grad_fn`` becomes the in-place op — while the nodes recorded before
keep pointing at the op that made the *old* value, exactly as in PyTorch.

Two more things are recorded, both for in-place updates (:mod:`.inplace`):

- **versions**: every array an op saves that is also an input's (or the output's) storage
  is remembered with that tensor's version; if the storage is overwritten before backward
  runs, backward raises PyTorch's "modified by an inplace operation" error instead of
  silently using the new values.
- **views**: ops that return a view of their input (reshape, permute, basic indexing ...)
  set ``view_of_input = True``; their output shares the input's version counter and
  remembers how it was made, so an in-place update of the view can be written back into
  the base's graph.

Rule for authors of ops: ``backward`` must never modify ``grad`` in place.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from sparkgrad.autodiff import autocast_state
from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.grad_mode import is_grad_enabled
from sparkgrad.autodiff.profiler import hooks as _prof
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.autodiff.versions import SavedVersion, refresh_if_stale


class Context:
    """Scratch space an op's forward leaves for its backward."""

    needs_input_grad: tuple[bool, ...] = ()
    saved_tensors: tuple[Any, ...] = ()

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep arrays for backward (released when the graph is freed)."""
        self.saved_tensors = arrays


def edge_to(t: Any) -> Any:
    """Where the gradient of ``t`` must go: its node, the leaf itself, or nowhere (None)."""
    if not isinstance(t, Tensor) or not t.requires_grad:
        return None
    if t._node is None:
        return t
    return t._node if t._output_nr == 0 else OutputSlot(t._node, t._output_nr, t)


class OutputSlot:
    """An edge into output ``index`` (> 0) of a node with several outputs (custom Functions)."""

    __slots__ = ("node", "index", "shape", "dtype")

    def __init__(self, node: Any, index: int, out: Tensor) -> None:
        self.node, self.index, self.shape, self.dtype = node, index, out.shape, out.dtype


class Node:
    """A recorded call of a Function (PyTorch's ``grad_fn``): what backward needs to rerun it.

    - ``edges``: one entry per positional input — the input's :class:`Node`, the input
      tensor itself when it is a leaf that requires grad, or ``None``.
    - ``shape``/``dtype``: of the output, so a gradient can be checked and cast.
    - ``hooks``: the output tensor's ``register_hook`` functions; ``retained``: a weak
      reference to the output when ``retain_grad()`` was called on it.
    - ``saved_versions``: what in-place updates must not have touched (see the module doc).
    """

    __slots__ = (
        "fn",
        "ctx",
        "edges",
        "shape",
        "dtype",
        "hooks",
        "retained",
        "saved_versions",
        "n_outputs",
        "__weakref__",
    )

    def __init__(self, fn: Any, ctx: Any, edges: tuple[Any, ...], out: Tensor) -> None:
        self.fn = fn
        self.ctx: Any = ctx
        self.edges: tuple[Any, ...] | None = edges
        self.shape, self.dtype = out.shape, out.dtype
        self.hooks: list[Callable] = []
        self.retained: weakref.ref | None = None
        self.saved_versions: tuple[SavedVersion, ...] = ()
        self.n_outputs = 1

    def name(self) -> str:
        """PyTorch-style name such as ``MulBackward``."""
        return f"{self.fn.__name__}Backward"

    def run_backward(self, grad: Any) -> tuple[Any, ...]:
        """The gradients of the inputs, given the gradient of the output."""
        for saved in self.saved_versions:
            saved.check(self)
        out = self.fn.backward(self.ctx, grad)
        return out if isinstance(out, tuple) else (out,)

    @property
    def next_functions(self) -> tuple[tuple[Any, int], ...]:
        """PyTorch's view of the edges: ``((node or AccumulateGrad or None, 0), ...)``."""
        return tuple(
            (AccumulateGrad(e) if isinstance(e, Tensor) else e, 0) for e in self.edges or ()
        )

    def release(self) -> None:
        """Drop saved arrays and edges, so intermediates can be freed."""
        self.ctx = None
        self.edges = None

    def __repr__(self) -> str:
        return f"<{self.name()}{' (freed)' if self.ctx is None else ''}>"


class AccumulateGrad:
    """What PyTorch shows at the end of an edge into a leaf: ``.variable`` is the leaf."""

    __slots__ = ("variable",)

    def __init__(self, variable: Tensor) -> None:
        self.variable = variable

    def name(self) -> str:
        return "AccumulateGrad"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AccumulateGrad) and other.variable is self.variable

    def __hash__(self) -> int:
        return id(self.variable)


class Function:
    """Base class of every differentiable op (see the module docstring)."""

    view_of_input = False  # True for ops whose output is a view of their first input

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor:
        """Run the op on tensors (or plain values) and record it for backward."""
        if autocast_state.engaged:  # sg.autocast is open somewhere: its op lists decide
            out = autocast_state.dispatch(cls, args, kwargs)
            if out is not None:
                return out
        span = _prof.begin_op(cls, args) if _prof.active else None  # profiler off: one read
        record = is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args)
        if record:
            for a in args:
                if isinstance(a, Tensor) and a._base is not None:
                    refresh_if_stale(a)  # a view whose base was updated in place
        raw = [a.array if isinstance(a, Tensor) else a for a in args]
        ctx = Context()
        if record:
            ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        out = Tensor._wrap(cls.forward(ctx, *raw, **kwargs))
        if cls.view_of_input and _shares_memory(out.array, raw[0]):
            # a view made under no_grad cannot have its history rewritten later (PyTorch)
            out._share_storage_with(args[0], (cls, kwargs) if is_grad_enabled() else None)
        if record:
            out.requires_grad = True
            out._set_node(Node(cls, ctx, tuple(edge_to(a) for a in args), out))
            out._node.saved_versions = _saved_versions(ctx.saved_tensors, args, raw, out)
        if span is not None:
            _prof.end(span)
        return out


def _shares_memory(out: Any, a: Any) -> bool:
    """Whether the op's output is a view of its input (bounds check only: cheap)."""
    return array_module(out).may_share_memory(out, a)


def _saved_versions(
    saved: tuple[Any, ...], args: tuple[Any, ...], raw: list[Any], out: Tensor
) -> tuple[SavedVersion, ...]:
    """The versions of the tensors whose storage the op saved (inputs or its own output)."""
    found = []
    for array in saved:
        if array is out.array:
            found.append(SavedVersion.of(out, "output"))
            continue
        for a, r in zip(args, raw):
            if array is r and isinstance(a, Tensor):
                found.append(SavedVersion.of(a, "input"))
                break
    return tuple(found)

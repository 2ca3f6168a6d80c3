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
graph is being recorded, remembers a :class:`Node` so :mod:`.graph` can call ``backward``
later. ``backward`` returns one gradient per positional input (``None`` for non-tensors or
inputs that need none) in the *broadcast* shape; the engine reduces it back to the input
shape in one central place (:func:`sparkgrad.autodiff.graph.sum_to_shape`).

Rule for authors of ops: ``backward`` must never modify ``grad`` in place.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.grad_mode import is_grad_enabled
from sparkgrad.autodiff.tensor import Tensor


class Context:
    """Scratch space an op's forward leaves for its backward."""

    needs_input_grad: tuple[bool, ...] = ()
    saved_tensors: tuple[Any, ...] = ()

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep arrays for backward (released when the graph is freed)."""
        self.saved_tensors = arrays


class Node:
    """A recorded call of a Function: what backward needs to run it once more."""

    __slots__ = ("fn", "ctx", "inputs")

    def __init__(self, fn: type[Function], ctx: Context, inputs: tuple[Tensor | None, ...]):
        self.fn = fn
        self.ctx: Context | None = ctx
        self.inputs: tuple[Tensor | None, ...] | None = inputs

    def name(self) -> str:
        """PyTorch-style name such as ``MulBackward``."""
        return f"{self.fn.__name__}Backward"

    def release(self) -> None:
        """Drop saved arrays and links to inputs, so intermediates can be freed."""
        self.ctx = None
        self.inputs = None

    def __repr__(self) -> str:
        return f"<{self.name()}{' (freed)' if self.ctx is None else ''}>"


class Function:
    """Base class of every differentiable op (see the module docstring)."""

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: Any) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Tensor:
        """Run the op on tensors (or plain values) and record it for backward."""
        raw = [a.array if isinstance(a, Tensor) else a for a in args]
        ctx = Context()
        record = is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in args)
        if record:
            ctx.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        out = Tensor._wrap(cls.forward(ctx, *raw, **kwargs))
        if record:
            out.requires_grad = True
            inputs = tuple(a if isinstance(a, Tensor) and a.requires_grad else None for a in args)
            out._node = Node(cls, ctx, inputs)
        return out

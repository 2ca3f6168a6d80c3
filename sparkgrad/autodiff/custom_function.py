"""``sg.autograd.Function``: PyTorch's way to write your own op, forward and backward on Tensors.

The engine's own ops (:class:`sparkgrad.autodiff.function.Function`, ``sg.Function``) work on
raw arrays, which is the lesson of how autograd is built. This is the contract PyTorch
tutorials use, on top of it::

    class LegendrePolynomial3(sg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return 0.5 * (5 * x**3 - 3 * x)

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * 1.5 * (5 * x**2 - 1)

    y = LegendrePolynomial3.apply(x)

``forward`` receives the arguments as given (Tensors stay Tensors) and runs without
recording (as in PyTorch: what happens inside is not differentiated); ``backward``
receives one gradient Tensor per output and returns one gradient per input of
``forward`` (``None`` for inputs that need none, and for non-Tensor arguments).
``ctx.save_for_backward`` keeps Tensors for backward, checked against in-place updates like
every saved value; ``ctx.needs_input_grad`` says which inputs need a gradient;
``ctx.mark_non_differentiable`` marks outputs (e.g. indices) that get none;
``ctx.set_materialize_grads(False)`` passes ``None`` instead of zeros for unused outputs.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Node, edge_to
from sparkgrad.autodiff.grad_mode import is_grad_enabled, no_grad
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.autodiff.versions import SavedVersion
from sparkgrad.errors import GradError


class FunctionCtx:
    """What ``forward`` hands to ``backward`` (the ``ctx`` argument)."""

    def __init__(self, needs_input_grad: tuple[bool, ...]) -> None:
        self.needs_input_grad = needs_input_grad
        self._to_save: tuple[Any, ...] = ()
        self._non_differentiable: set[int] = set()
        self._dirty: set[int] = set()
        self.materialize_grads = True

    def save_for_backward(self, *tensors: Any) -> None:
        """Keep these Tensors (or ``None``) for backward, as ``ctx.saved_tensors``."""
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(
                    f"save_for_backward can only save Tensors or None, found "
                    f"{type(t).__name__}; keep other values as ctx attributes (ctx.k = k)"
                )
        self._to_save = tensors

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        return self._to_save

    def mark_non_differentiable(self, *outputs: Tensor) -> None:
        """These outputs get no gradient (their ``requires_grad`` stays False)."""
        self._non_differentiable.update(id(t) for t in outputs)

    def mark_dirty(self, *tensors: Tensor) -> None:
        """These inputs were updated in place by ``forward`` (and are returned as outputs)."""
        self._dirty.update(id(t) for t in tensors)

    def set_materialize_grads(self, value: bool) -> None:
        """``False``: ``backward`` gets ``None`` for outputs nothing depended on (not zeros)."""
        self.materialize_grads = bool(value)


class CustomNode(Node):
    """The node of a custom Function: calls the user's ``backward`` with Tensors."""

    __slots__ = ("output_meta",)

    def name(self) -> str:
        return f"{self.fn.__name__}Backward"

    def run_backward(self, grad: Any) -> tuple[Any, ...]:
        for saved in self.saved_versions:
            saved.check(self)
        grads = grad if isinstance(grad, list) else [grad]
        wrapped = []
        for g, (shape, dtype, xp) in zip(grads, self.output_meta):
            if g is None and self.ctx.materialize_grads:
                g = xp.zeros(shape, dtype=dtype)
            wrapped.append(None if g is None else Tensor._wrap(g))
        result = self.fn.backward(self.ctx, *wrapped)
        result = result if isinstance(result, tuple) else (result,)
        expected = len(self.edges)
        if len(result) != expected:
            raise GradError(
                f"function {self.name()} returned an incorrect number of gradients "
                f"(expected {expected}, got {len(result)})"
            )
        out = []
        for i, (g, needed) in enumerate(zip(result, self.ctx.needs_input_grad)):
            if g is not None and not isinstance(g, Tensor):
                raise GradError(
                    f"function {self.name()} returned a {type(g).__name__} as gradient {i}; "
                    "gradients must be Tensors or None"
                )
            out.append(g.array if (g is not None and needed) else None)
        return tuple(out)


class Function:
    """Base class of custom differentiable ops written with Tensors (see the module doc)."""

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("You must implement the forward function for custom Function.")

    @staticmethod
    def backward(ctx: FunctionCtx, *grad_outputs: Any) -> Any:
        raise NotImplementedError(
            "You must implement either the backward or vjp method for your custom "
            "autograd.Function to use it with backward mode AD."
        )

    vjp = backward

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Run ``forward`` and, when a graph is being recorded, record ``backward``."""
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        record = is_grad_enabled() and any(needs)
        ctx = FunctionCtx(needs)
        with no_grad():
            result = cls.forward(ctx, *args, **kwargs)
        single = not isinstance(result, tuple)
        outputs = [_own_output(o, args, ctx) for o in ((result,) if single else result)]
        if record:
            _record(cls, ctx, args, outputs)
        return outputs[0] if single else tuple(outputs)


def _own_output(out: Any, args: tuple[Any, ...], ctx: FunctionCtx) -> Any:
    """An output that *is* an input (``return x``) becomes a new Tensor on the same storage."""
    if isinstance(out, Tensor) and any(out is a for a in args) and id(out) not in ctx._dirty:
        alias = Tensor._wrap(out.array)
        alias._version_counter = out._version_counter
        return alias
    return out


def _record(cls: type, ctx: FunctionCtx, args: tuple[Any, ...], outputs: list[Any]) -> None:
    """Hang one :class:`CustomNode` on the differentiable outputs."""
    first = next((o for o in outputs if isinstance(o, Tensor)), None)
    if first is None:
        return
    node = CustomNode(cls, ctx, tuple(edge_to(a) for a in args), first)
    node.n_outputs = len(outputs)
    node.output_meta = [  # shape, dtype, array module: to make zeros for unused outputs
        (o.shape, o.dtype, array_module(o.array))
        if isinstance(o, Tensor)
        else ((), first.dtype, array_module(first.array))
        for o in outputs
    ]
    for i, o in enumerate(outputs):
        if isinstance(o, Tensor) and id(o) not in ctx._non_differentiable:
            o.requires_grad = True
            o._set_node(node)
            o._output_nr = i
    saved, versions = [], []
    for t in ctx._to_save:  # outputs are kept as detached aliases: no cycle node -> output
        if t is not None and any(t is o for o in outputs):
            versions.append(SavedVersion.of(t, "output"))
            t = t.detach()
        elif t is not None:
            versions.append(SavedVersion.of(t, "input"))
        saved.append(t)
    ctx._to_save = tuple(saved)
    node.saved_versions = tuple(versions)

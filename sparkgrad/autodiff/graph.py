"""The backward engine: walk the recorded graph from the outputs back to the leaves.

The graph's vertices are :class:`~sparkgrad.autodiff.function.Node`\\ s (one per recorded op)
and the leaves that require grad; each node's ``edges`` lead to the vertices that made its
inputs.

1. :func:`topological_order` lists every vertex the outputs depend on, consumers before
   producers, with an explicit stack (no recursion, so a 10,000-op chain is fine).
2. :func:`backward` visits them in that order: the gradients that arrived at a node are
   summed, its hooks run, its op's ``backward`` turns the gradient of its output into
   gradients of its inputs, and those travel along the edges. :func:`sum_to_shape` (the ONE
   place broadcasting is undone) gives each the shape of the input it belongs to. A leaf
   adds what arrives to its ``.grad``, as PyTorch does.
3. Unless ``retain_graph=True``, every visited node is released afterwards, so the
   arrays it saved are freed as soon as nobody else holds them.

One speed trick is fenced off in :class:`Pending`: a leaf's first gradient is stored
without a copy when no other array can alias it (:func:`is_private`). Read the loop in
:func:`_walk` as if every gradient were copied; the result is the same.

:func:`grad` (``sg.autograd.grad``) is the same walk, but it hands the gradients of chosen
tensors back instead of adding them to ``.grad``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.function import Node, OutputSlot, edge_to
from sparkgrad.autodiff.grad_mode import no_grad
from sparkgrad.autodiff.profiler import hooks as _prof
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import GradError, ShapeError


def sum_to_shape(grad: Any, shape: tuple[int, ...]) -> Any:
    """Undo broadcasting: sum ``grad`` over the axes that broadcasting added or stretched.

    If ``z = x + y`` broadcast ``x`` of shape (3, 1) to (3, 4), every element of ``x`` was
    used 4 times, so its gradient is the sum of the 4 upstream gradients.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra < 0:
        raise ShapeError(f"gradient of shape {grad.shape} cannot reduce to input shape {shape}")
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1
    )
    out = grad.sum(axis=axes, keepdims=True) if axes else grad
    return out.reshape(shape)


def topological_order(roots: Sequence[Any]) -> list[Any]:
    """Every vertex the roots depend on, each after all the vertices that consume it."""
    order: list[Any] = []
    visited: set[int] = set()
    stack: list[tuple[Any, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        vertex, finished = stack.pop()
        if finished:
            order.append(vertex)
            continue
        if id(vertex) in visited:
            continue
        visited.add(id(vertex))
        stack.append((vertex, True))
        edges = vertex.edges if isinstance(vertex, Node) else None
        # reversed: the first input (the data path) is explored first, so a weight lands
        # right after its op in the order and its .grad is final early (DDP starts
        # reducing it while backward still runs)
        for edge in reversed(edges or ()):
            if type(edge) is OutputSlot:
                edge = edge.node
            if edge is not None and id(edge) not in visited:
                stack.append((edge, False))
    order.reverse()
    return order


def backward(
    tensors: Sequence[Tensor],
    grad_tensors: Sequence[Any] | None = None,
    retain_graph: bool = False,
    inputs: Sequence[Tensor] | None = None,
) -> None:
    """Add d(tensors)/d(leaf) · grad_tensors to ``leaf.grad`` for every leaf they depend on.

    ``inputs`` limits the accumulation to those tensors (a non-leaf among them gets its
    ``.grad`` too), as ``torch.autograd.backward(..., inputs=...)``.
    """
    from sparkgrad.autodiff.saved_memory import observe_graph  # it imports this module

    observe_graph(*tensors)  # an ActivationTracker, if on, measures the end of forward here
    roots = _roots(tensors, grad_tensors)
    if inputs is None:
        _walk(roots, retain_graph)
        return
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    wanted = {id(edge_to(t)): t for t in inputs}
    found = _walk(roots, retain_graph, capture=wanted)
    for key, g in found.items():
        _accumulate_leaf(wanted[key], g, owned=False)


def grad(
    outputs: Any,
    inputs: Any,
    grad_outputs: Any = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool | None = None,
    materialize_grads: bool = False,
) -> tuple[Tensor | None, ...]:
    """The gradients of ``outputs`` with respect to ``inputs``, returned (``.grad`` untouched)."""
    if create_graph:
        raise GradError(
            "create_graph=True is not supported: sparkgrad's backward works on raw arrays, so "
            "it cannot record a graph of the gradients (no higher-order derivatives)"
        )
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    if grad_outputs is not None and isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise GradError(f"The differentiated Tensor at index {i} does not require grad")
    wanted = {id(edge_to(t)): t for t in inputs}
    found = _walk(_roots(outputs, grad_outputs), bool(retain_graph), capture=wanted)
    result: list[Tensor | None] = []
    for i, t in enumerate(inputs):
        g = found.get(id(edge_to(t)))
        if g is None:
            if not (allow_unused or materialize_grads):
                raise GradError(
                    f"The differentiated Tensor at index {i} appears to not have been used in "
                    "the graph. Set allow_unused=True if this is the desired behavior."
                )
            result.append(
                Tensor._wrap(array_module(t.array).zeros_like(t.array))
                if materialize_grads
                else None
            )
        else:
            result.append(Tensor._wrap(g.copy()))
    return tuple(result)


def _roots(tensors: Sequence[Tensor], grads: Sequence[Any] | None) -> list[tuple[Any, Any]]:
    """``(vertex, gradient array)`` for each output backward starts from."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    grads = [None] * len(tensors) if grads is None else list(grads)
    if len(grads) != len(tensors):
        raise GradError(f"got {len(tensors)} tensors but {len(grads)} gradients")
    roots = []
    for t, g in zip(tensors, grads):
        if not t.requires_grad:
            raise GradError(
                "element 0 of tensors does not require grad and does not have a grad_fn: "
                "create the inputs with requires_grad=True (or call .requires_grad_())"
            )
        if t._node is not None and t._node.edges is None:
            raise GradError(
                "Trying to backward through the graph a second time: its saved values were "
                "freed. Pass retain_graph=True to the first backward() if you need to call it "
                "twice."
            )
        roots.append((edge_to(t), _root_grad(t, g)))
    return roots


def _root_grad(t: Tensor, g: Any) -> Any:
    if g is None:
        if t.array.size != 1:
            raise GradError(
                f"grad can be implicitly created only for scalar outputs; found shape "
                f"{t.shape}: pass a gradient of that shape, e.g. y.backward(sg.ones_like(y))"
            )
        return array_module(t.array).ones_like(t.array)
    g = g.array if isinstance(g, Tensor) else g
    if tuple(g.shape) != t.shape:
        raise ShapeError(f"gradient shape {tuple(g.shape)} does not match output {t.shape}")
    return g if g.dtype == t.dtype else g.astype(t.dtype)  # as torch: the output's dtype


def _walk(
    roots: list[tuple[Any, Any]], retain_graph: bool, capture: dict[int, Any] | None = None
) -> dict[int, Any]:
    """Run backward from ``roots``. With ``capture``, the gradients arriving at those
    vertices are returned instead of being accumulated into leaves."""
    pending = Pending()
    for vertex, g in roots:
        pending.add(vertex, g)
    found: dict[int, Any] = {}
    with no_grad():
        for vertex in topological_order([v for v, _ in roots]):
            if not pending.has(vertex):
                continue
            is_leaf = not isinstance(vertex, Node)
            g, owned = pending.pop(vertex)
            if not isinstance(g, list):
                g, owned = _run_hooks(vertex._hooks if is_leaf else vertex.hooks, g, owned)
            if capture is not None and id(vertex) in capture:
                found[id(vertex)] = g
                if is_leaf:
                    continue
            elif is_leaf:
                if capture is None:
                    _accumulate_leaf(vertex, g, owned)
                continue
            node = vertex
            if node.edges is None:
                raise GradError("Trying to backward through the graph a second time (freed node)")
            if capture is None and node.retained is not None:
                _retain(node.retained(), g)
            pending.start_node(g)
            grads = _prof.run_backward(node, g) if _prof.active else node.run_backward(g)
            for edge, pg in zip(node.edges, grads):
                if edge is None or pg is None:
                    continue
                reduced = sum_to_shape(pg, edge.shape)
                if reduced.dtype != edge.dtype:  # a grad has its tensor's dtype (PyTorch)
                    reduced = reduced.astype(edge.dtype)
                pending.add(edge, reduced)
            if not retain_graph:
                node.release()
    return found


class Pending:
    """The gradients that have arrived at each vertex and are not used yet (summed on arrival).

    A node with several outputs (a custom Function) collects one gradient per output and
    gets them as a list, ``None`` for outputs nothing depended on.

    Fast path (bookkeeping only, no change to any value): each single gradient carries a
    flag *owned* -- True when no other array can alias it, so a leaf may keep it as its
    ``.grad`` without a copy. :meth:`start_node` tells which array came *in* to the node
    whose outputs :meth:`add` receives next (see :func:`is_private`).
    """

    def __init__(self) -> None:
        self._grads: dict[int, Any] = {}
        self._incoming: Any = None
        self._handed_out: set[int] = set()

    def start_node(self, incoming: Any) -> None:
        """The next :meth:`add` calls carry the gradients one node made from ``incoming``."""
        self._incoming, self._handed_out = incoming, set()

    def add(self, edge: Any, grad: Any) -> None:
        vertex, slot = (edge.node, edge.index) if type(edge) is OutputSlot else (edge, 0)
        owned = is_private(grad, self._incoming, self._handed_out)
        self._handed_out.add(id(grad))
        if getattr(vertex, "n_outputs", 1) > 1:
            slots = self._grads.setdefault(id(vertex), [None] * vertex.n_outputs)
            slots[slot] = grad if slots[slot] is None else slots[slot] + grad
            return
        previous = self._grads.get(id(vertex))
        self._grads[id(vertex)] = (grad, owned) if previous is None else (previous[0] + grad, True)

    def has(self, vertex: Any) -> bool:
        return id(vertex) in self._grads

    def pop(self, vertex: Any) -> tuple[Any, bool]:
        """``(gradient, owned)`` of ``vertex`` (a list and False for a multi-output node)."""
        entry = self._grads.pop(id(vertex))
        return (entry, False) if isinstance(entry, list) else entry


def is_private(array: Any, incoming: Any, handed_out: set[int]) -> bool:
    """Fast path: may a leaf keep this array as its ``.grad`` without copying it?

    Yes when nothing else can hold it: it is not the incoming gradient (nor a root's
    gradient, which the caller owns), not a view of another array, and not an array this
    node already gave to another input. Otherwise the leaf gets a copy, so that updating
    one ``.grad`` in place never changes another.
    """
    return (
        incoming is not None
        and array is not incoming
        and getattr(array, "base", None) is None
        and id(array) not in handed_out
    )


def _accumulate_leaf(leaf: Tensor, grad: Any, owned: bool) -> None:
    """``leaf.grad += grad`` (a fresh Tensor the first time), then the post-accumulate hooks."""
    if leaf.grad is None:
        leaf.grad = Tensor._wrap(grad if owned else grad.copy())
    else:
        leaf.grad.array += grad
    for hook in leaf._post_hooks:
        hook(leaf)


def _retain(t: Tensor | None, grad: Any) -> None:
    """``retain_grad()``: a non-leaf's ``.grad`` accumulates like a leaf's (PyTorch)."""
    if t is None:
        return
    if t.grad is None:
        t.grad = Tensor._wrap(grad.copy())
    else:
        t.grad = Tensor._wrap(t.grad.array + grad)


def _run_hooks(hooks: list, grad: Any, owned: bool) -> tuple[Any, bool]:
    """Each ``register_hook`` function sees the gradient and may return a replacement."""
    for hook in hooks:
        result = hook(Tensor._wrap(grad))
        if result is not None:
            grad, owned = (result.array if isinstance(result, Tensor) else result), False
    return grad, owned

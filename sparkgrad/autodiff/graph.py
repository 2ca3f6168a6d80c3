"""The backward engine: walk the recorded graph from a tensor back to the leaves.

1. :func:`topological_order` lists every tensor the output depends on, outputs before
   inputs, with an explicit stack (no recursion, so a 10,000-op chain is fine).
2. :func:`backward` visits them in that order, calls each node's ``backward``, reduces
   broadcast gradients with :func:`sum_to_shape` (the ONE place broadcasting is undone),
   and accumulates into the leaves' ``.grad`` as PyTorch does.
3. Unless ``retain_graph=True``, every visited node is released afterwards, so the
   intermediate arrays it saved are freed as soon as nobody else holds them.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.grad_mode import no_grad
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


def topological_order(root: Tensor) -> list[Tensor]:
    """Tensors that ``root`` depends on (requiring grad), ``root`` first, inputs after outputs."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        tensor, finished = stack.pop()
        if finished:
            order.append(tensor)
            continue
        if id(tensor) in visited:
            continue
        visited.add(id(tensor))
        stack.append((tensor, True))
        node = tensor._node
        if node is not None and node.inputs is not None:
            # reversed: the first input (the data path) is explored first, so a weight
            # lands right after its op in the order and its .grad is final early (DDP
            # starts reducing it while backward still runs)
            for parent in reversed(node.inputs):
                if parent is not None and id(parent) not in visited:
                    stack.append((parent, False))
    order.reverse()
    return order


def _accumulate_leaf(leaf: Tensor, grad: Any, owned: bool) -> None:
    """``leaf.grad += grad``; copies an array that other tensors may still share."""
    if leaf.grad is None:
        leaf.grad = Tensor._wrap(grad if owned else grad.copy())
    else:
        leaf.grad.array += grad
    for hook in leaf._post_hooks:
        hook(leaf)


def _run_hooks(tensor: Tensor, grad: Any, owned: bool) -> tuple[Any, bool]:
    for hook in tensor._hooks:
        result = hook(Tensor._wrap(grad))
        if result is not None:
            grad, owned = (result.array if isinstance(result, Tensor) else result), False
    return grad, owned


def backward(root: Tensor, grad: Any = None, retain_graph: bool = False) -> None:
    """Fill ``.grad`` of every leaf that ``root`` depends on with d(root)/d(leaf) * grad."""
    if not root.requires_grad:
        raise GradError(
            "element 0 of tensors does not require grad and does not have a grad_fn: "
            "create the inputs with requires_grad=True (or call .requires_grad_())"
        )
    if grad is None:
        if root.array.size != 1:
            raise GradError(
                f"grad can be implicitly created only for scalar outputs; found shape "
                f"{root.shape}: pass a gradient of that shape, e.g. y.backward(sg.ones_like(y))"
            )
        grad = array_module(root.array).ones_like(root.array)
    else:
        grad = grad.array if isinstance(grad, Tensor) else grad
        if tuple(grad.shape) != root.shape:
            raise ShapeError(
                f"gradient shape {tuple(grad.shape)} does not match output {root.shape}"
            )
    if root._node is not None and root._node.inputs is None:
        raise GradError(
            "Trying to backward through the graph a second time: its saved values were freed. "
            "Pass retain_graph=True to the first backward() if you need to call it twice."
        )

    grads: dict[int, tuple[Any, bool]] = {id(root): (grad, False)}
    with no_grad():
        for tensor in topological_order(root):
            entry = grads.pop(id(tensor), None)
            if entry is None:
                continue
            g, owned = _run_hooks(tensor, *entry)
            node = tensor._node
            if node is None:
                _accumulate_leaf(tensor, g, owned)
                continue
            if tensor._retains_grad:  # accumulates like a leaf's grad, as in PyTorch
                if tensor.grad is None:
                    tensor.grad = Tensor._wrap(g.copy())
                else:
                    tensor.grad.array = tensor.grad.array + g
            if node.inputs is None:
                raise GradError("Trying to backward through the graph a second time (freed node)")
            input_grads = node.fn.backward(node.ctx, g)
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            handed_out: set[int] = set()
            for parent, pg in zip(node.inputs, input_grads):
                if parent is None or pg is None:
                    continue
                reduced = sum_to_shape(pg, parent.shape)
                if reduced.dtype != parent.dtype:  # a grad has its tensor's dtype (PyTorch)
                    reduced = reduced.astype(parent.dtype)
                # "fresh" = nothing else can hold this array: not the incoming grad, not a
                # view, not an array this backward already gave to another input
                fresh = (
                    reduced is not g
                    and getattr(reduced, "base", None) is None
                    and id(reduced) not in handed_out
                )
                handed_out.add(id(reduced))
                previous = grads.get(id(parent))
                if previous is None:
                    grads[id(parent)] = (reduced, fresh)
                else:
                    grads[id(parent)] = (previous[0] + reduced, True)
            if not retain_graph:
                node.release()

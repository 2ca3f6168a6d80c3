"""Chapter 1 exercise — the backward pass: topological order, then gradients accumulated.

While you compute with tensors that require grad, every op leaves a :class:`Node` on its
result (``t._node``, PyTorch's ``grad_fn``). The recorded graph has two kinds of vertex:

- a **Node**: one recorded op. ``node.edges`` has one entry per input of the op: the
  input's Node, the input tensor itself when it is a *leaf* that requires grad, or
  ``None`` (an input that needs no gradient). ``node.run_backward(g)`` turns the
  gradient of the op's output into one gradient per input (``None`` where there is none),
  each still in the *broadcast* shape;
- a **leaf**: a tensor you made yourself with ``requires_grad=True`` (a weight). It has
  no edges; its gradient is added to ``leaf.grad``.

``edge_to(t)`` is where the gradient of ``t`` goes first: its Node, or ``t`` itself when
it is a leaf. ``sum_to_shape(g, shape)`` undoes broadcasting (walkthrough 1.2): every
gradient travelling along an edge is reduced to ``edge.shape`` (Nodes and leaves both
have ``.shape``).

Write the plain version (the project's is ``sparkgrad/autodiff/graph.py``; read it
afterwards — it adds hooks, ``retain_graph``, ``inputs=`` and a copy-saving fast path).
Ops with several outputs (custom Functions) are out of scope here: every edge you meet
is a Node, a leaf Tensor or None.

Check it: ``python -m pytest -m exercise_backward --learner``.
"""

from __future__ import annotations

from typing import Any

from exercises.reference import Node, Tensor, edge_to, no_grad, sum_to_shape  # noqa: F401


def topological_order(roots: list[Any]) -> list[Any]:
    """Every vertex the ``roots`` depend on, once each, every vertex before all it consumes.

    "Consumes": a Node consumes the vertices its ``edges`` lead to. So the roots come
    first and the leaves last, and when backward reaches a vertex, every gradient that
    will ever arrive at it has arrived — however many paths lead there (a value used
    twice, walkthrough 1.1).

    The classic way: a depth-first search that appends a vertex *after* all the vertices
    it leads to (post-order), then reverses the list. Use an explicit stack, not
    recursion: a chain of 10,000 ops must not hit Python's recursion limit. Remember
    visited vertices by ``id(vertex)`` (tensors overload ``==``).
    """
    raise NotImplementedError("exercise: topological_order in exercises/ch01_backward.py")


def backward(root: Tensor, grad: Any = None) -> None:
    """Add d(root)/d(leaf) · ``grad`` to ``leaf.grad`` for every leaf ``root`` depends on.

    1. The starting gradient: ``grad`` (an array of ``root``'s shape), or ones when it is
       None (allowed only for a one-element ``root``, as ``loss.backward()``).
    2. Keep a table "vertex -> gradient arrived so far" (keyed by ``id``); put the root's.
    3. Visit ``topological_order([edge_to(root)])`` in order. For each vertex take its
       summed gradient ``g`` out of the table (skip vertices that got none), then
       - a leaf: ``leaf.grad`` becomes ``g`` the first time (a Tensor of a *copy*:
         ``Tensor._wrap(g.copy())``), and afterwards ``g`` is added to it
         (``leaf.grad.array += g``) — gradients accumulate across backward calls, which
         is why training loops call ``zero_grad()``;
       - a Node: for each ``edge, pg`` in ``zip(node.edges, node.run_backward(g))`` that
         are both not None, add ``sum_to_shape(pg, edge.shape)`` to the edge's entry.
    4. Do it all under ``with no_grad():`` — backward's own arithmetic is not recorded.

    Every Node runs its backward exactly once, after all its gradient has arrived.
    """
    raise NotImplementedError("exercise: backward in exercises/ch01_backward.py")

"""``draw_graph``/``graph_nodes``: the picture of the graph notebook 1 shows.

The structure is checked against two independent truths: the edges written by hand from
the expression, and the graph PyTorch records for the same expression
(``grad_fn.next_functions``). Drawing must neither change the graph nor keep it alive.
"""

from __future__ import annotations

import gc
import io
import re
import weakref
from collections import Counter

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.text import Annotation

import sparkgrad as sg
from sparkgrad.autodiff import draw_graph, graph_nodes


def _leaves():
    a = sg.tensor([1.0, -2.0], requires_grad=True)
    b = sg.tensor([3.0, 4.0], requires_grad=True)
    c = sg.tensor(0.5, requires_grad=True)
    return a, b, c


def _labelled_edges(graph):
    by_id = graph.by_id()
    return Counter((by_id[s].label, by_id[d].label) for s, d in graph.edges)


def test_relu_of_mul_add_has_exactly_these_ops_and_edges():
    a, b, c = _leaves()
    ab = a * b
    s = ab + c
    y = s.relu()
    graph = graph_nodes(y, names={"a": a, "b": b, "c": c, "ab": ab, "s": s, "y": y})
    assert sorted(graph.ops()) == ["AddBackward", "MulBackward", "ReLUBackward"]
    assert _labelled_edges(graph) == Counter(
        [
            ("a", "MulBackward"), ("b", "MulBackward"), ("MulBackward", "ab"),
            ("ab", "AddBackward"), ("c", "AddBackward"), ("AddBackward", "s"),
            ("s", "ReLUBackward"), ("ReLUBackward", "y"),
        ]
    )  # fmt: skip
    tensors = {n.label: n for n in graph.nodes if n.kind == "tensor"}
    assert tensors["a"].value == [1.0, -2.0] and tensors["a"].is_leaf
    assert tensors["c"].shape == () and tensors["c"].value == 0.5
    assert not tensors["s"].is_leaf and tensors["y"].shape == (2,)


def _norm(name: str) -> str:
    """``ReluBackward0`` (PyTorch) and ``ReLUBackward`` (sparkgrad) -> ``relubackward``."""
    return re.sub(r"\d+$", "", name).lower()


def _op_edges_sparkgrad(graph, leaf_names):
    """Collapse tensor vertices: edges op->op, or leaf-name->op, as PyTorch records them."""
    by_id = graph.by_id()
    producer = {dst: src for src, dst in graph.edges if by_id[src].kind == "op"}
    edges = Counter()
    for src, dst in graph.edges:
        if by_id[src].kind != "tensor":
            continue
        origin = by_id[src].label if by_id[src].is_leaf else by_id[producer[src]].label
        edges[(_norm(origin) if origin not in leaf_names else origin, _norm(by_id[dst].label))] += 1
    return edges


def _op_edges_torch(root, leaf_names):
    names = {id(t): n for n, t in leaf_names.items()}
    edges, stack, seen = Counter(), [root.grad_fn], set()
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        for nxt, _ in fn.next_functions:
            if nxt is None:
                continue
            if type(nxt).__name__ == "AccumulateGrad":
                edges[(names[id(nxt.variable)], _norm(fn.name()))] += 1
            else:
                edges[(_norm(nxt.name()), _norm(fn.name()))] += 1
                stack.append(nxt)
    return edges


def test_op_structure_matches_pytorch_for_several_expressions():
    exprs = [
        lambda a, b, c: (a * b + c).relu().sum(),
        lambda a, b, c: ((a * b).exp() + c * a).tanh().mean(),
        lambda a, b, c: a * a * a - (b / c).sigmoid(),
    ]
    for expr in exprs:
        a, b, c = _leaves()
        ta, tb, tc = (torch.tensor(t.array, requires_grad=True) for t in (a, b, c))
        ours = _op_edges_sparkgrad(graph_nodes(expr(a, b, c), names=dict(a=a, b=b, c=c)), "abc")
        theirs = _op_edges_torch(expr(ta, tb, tc), dict(a=ta, b=tb, c=tc))
        assert ours == theirs


def test_drawing_neither_changes_the_graph_nor_keeps_it_alive():
    a, b, c = _leaves()
    ab = a * b
    y = (ab + c).relu().sum()
    probe = weakref.ref(ab.grad_fn)
    node_edges = y.grad_fn.edges
    fig = draw_graph(y, names={"a": a})
    assert y.grad_fn.edges is node_edges and a.grad is None  # nothing ran, nothing moved
    y.backward()  # the graph still works after drawing, and gives PyTorch's gradients
    ta, tb, tc = (torch.tensor(t.array, requires_grad=True) for t in (a, b, c))
    (ta * tb + tc).relu().sum().backward()
    for ours, theirs in ((a, ta), (b, tb), (c, tc)):
        np.testing.assert_allclose(ours.grad.array, theirs.grad.numpy())
    del ab, y
    gc.collect()
    assert probe() is None, "the figure (or graph_nodes) kept an intermediate node alive"
    assert isinstance(fig, Figure)


def test_figure_has_one_box_per_vertex_and_one_arrow_per_edge_and_renders():
    a, b, c = _leaves()
    y = (a * b + c).relu()
    y.retain_grad()
    y.sum().backward(retain_graph=True)
    graph = graph_nodes(y)
    fig = draw_graph(y, names={"a": a, "b": b, "c": c})
    ax = fig.axes[0]
    arrows = [t for t in ax.texts if isinstance(t, Annotation)]
    boxes = [t for t in ax.texts if not isinstance(t, Annotation)]
    assert len(boxes) == len(graph.nodes) and len(arrows) == len(graph.edges)
    text = "\n".join(t.get_text() for t in boxes)
    # by hand: a*b + c = [3.5, -7.5], so relu' = [1, 0] and a.grad = b * relu' = [3, 0]
    assert "grad [3., 0.]" in text and "grad [1., 1.]" in text  # a.grad and y.grad (retained)
    fig.savefig(io.BytesIO(), format="png")  # the whole picture renders
    # drawing into a given axes returns that axes' figure
    own = Figure()
    assert draw_graph(y, ax=own.add_subplot(), show_values=False, show_grads=False) is own


def test_freed_graph_shows_the_op_as_freed_and_nothing_behind_it():
    a, b, c = _leaves()
    y = (a * b + c).sum()
    y.backward()
    graph = graph_nodes(y)
    assert graph.ops() == ["SumBackward (freed)"]
    assert len(graph.edges) == 1 and len(graph.nodes) == 2


def test_long_chain_needs_no_recursion():
    x = sg.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(3000):
        y = y + 1.0
    graph = graph_nodes(y)
    assert len(graph.ops()) == 3000 and len(graph.nodes) == 6001

"""Draw the computation graph that autograd recorded, with matplotlib (no Graphviz needed).

Every op applied to a tensor that requires grad leaves a :class:`~sparkgrad.autodiff.function.Node`
on its output: ``y.grad_fn`` knows the op (``node.name()``, e.g. ``MulBackward``) and, in
``node.edges``, the nodes that made its inputs (or the input itself when it is a leaf).
Following those links from the output back to the leaves is all :func:`graph_nodes` does;
:func:`draw_graph` then lays the graph out in columns — leaves on the left, the output on
the right, the data flowing left to right — and draws tensors as boxes (each op's output
between it and its consumers) and ops as ellipses::

    a = sg.tensor(2.0, requires_grad=True); b = sg.tensor(3.0, requires_grad=True)
    y = (a * b).relu()
    fig = draw_graph(y, names={"a": a, "b": b, "y": y})   # a, b -> MulBackward -> ...

Two promises: drawing never changes the graph (no backward, no new nodes) and never keeps
it alive (the result holds strings and numbers, not tensors), so ``del y`` still frees it.
After ``backward()`` (without ``retain_graph=True``) the nodes are released: their edges
are gone, and the picture shows the op as ``(freed)`` with nothing behind it. The graph
keeps nodes, not the intermediate tensors: an intermediate shows its values only when it
is given in ``names`` (otherwise its shape).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from sparkgrad.autodiff.backend import to_numpy
from sparkgrad.autodiff.tensor import Tensor

if TYPE_CHECKING:  # matplotlib is imported only when a graph is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_SHOWN = 6  # tensors with at most this many elements show their values


@dataclass(frozen=True)
class GraphNode:
    """One vertex of the picture: a tensor (``kind="tensor"``) or an op (``kind="op"``)."""

    id: str
    kind: str
    label: str  # the op's name, or the tensor's name from ``names`` ("" when unnamed)
    shape: tuple[int, ...] | None = None
    value: Any = None  # nested list of the values when small (<= MAX_SHOWN), else None
    grad: Any = None  # the same for ``.grad``, when it is set
    is_leaf: bool = False
    requires_grad: bool = False


@dataclass
class GraphData:
    """Vertices and edges ``(source id, target id)`` in the direction the data flows."""

    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def by_id(self) -> dict[str, GraphNode]:
        return {n.id: n for n in self.nodes}

    def ops(self) -> list[str]:
        """Names of the ops, output side first (e.g. ``['ReLUBackward', 'AddBackward', ...]``)."""
        return [n.label for n in self.nodes if n.kind == "op"]


def _small(array: Any) -> Any:
    if array.size > MAX_SHOWN:
        return None
    return to_numpy(array).tolist()


def graph_nodes(tensor: Tensor, names: Mapping[str, Tensor] | None = None) -> GraphData:
    """The graph behind ``tensor`` as plain data: which tensors and ops, and what feeds what.

    ``names`` maps labels to tensors (``{"a": a, "y": y}``) so the picture can say which
    box is which. Inputs that need no gradient (constants, plain numbers) are not part of
    the recorded graph and do not appear, as in PyTorch.
    """
    label_of = {id(t): name for name, t in (names or {}).items()}
    known = {id(t._node): t for t in [tensor, *(names or {}).values()] if t._node is not None}
    data = GraphData()
    tensor_ids: dict[int, str] = {}
    op_ids: dict[int, str] = {}

    def add_tensor(key: int, t: Tensor | None, shape: tuple, leaf: bool) -> str:
        tid = tensor_ids[key] = f"t{len(tensor_ids)}"
        value = grad = None
        if t is not None:
            value = _small(t.array)
            grad = None if t.grad is None else _small(t.grad.array)
        label = label_of.get(id(t), "") if t is not None else ""
        data.nodes.append(GraphNode(tid, "tensor", label, tuple(shape), value, grad, leaf, True))
        return tid

    def output_of(node: Any) -> tuple[str, bool]:
        """The box for what ``node`` made (the tensor, when we know it), and whether new."""
        if id(node) in tensor_ids:
            return tensor_ids[id(node)], False
        return add_tensor(id(node), known.get(id(node)), node.shape, False), True

    if tensor._node is None:
        add_tensor(id(tensor), tensor, tensor.shape, tensor.is_leaf)
        return data
    output_of(tensor._node)
    stack = [tensor._node]
    while stack:  # explicit stack: deep graphs (long chains) need no recursion
        node = stack.pop()
        freed = node.edges is None
        oid = op_ids[id(node)] = f"f{len(op_ids)}"
        data.nodes.append(GraphNode(oid, "op", node.name() + (" (freed)" if freed else "")))
        data.edges.append((oid, tensor_ids[id(node)]))
        for edge in node.edges or ():
            edge = getattr(edge, "node", edge)  # an OutputSlot leads to its node
            if edge is None:
                continue
            if isinstance(edge, Tensor):  # a leaf
                pid = tensor_ids.get(id(edge)) or add_tensor(id(edge), edge, edge.shape, True)
                data.edges.append((pid, oid))
                continue
            pid, new = output_of(edge)
            data.edges.append((pid, oid))
            if new:
                stack.append(edge)
    return data


def layout(graph: GraphData) -> dict[str, tuple[float, float]]:
    """``{id: (column, row)}``: column = how far from the output (longest path), mirrored.

    Putting each vertex by its *longest* distance to the output keeps every edge pointing
    right. Within a column, vertices sit near the mean height of what they feed
    (the "barycenter" rule), which keeps crossings rare for the graphs of a lesson.
    """
    consumers: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    producers: dict[str, list[str]] = {n.id: [] for n in graph.nodes}
    for src, dst in graph.edges:
        consumers[src].append(dst)
        producers[dst].append(src)
    # Kahn's algorithm from the output: a vertex is ranked once all its consumers are.
    waiting = {v: len(c) for v, c in consumers.items()}
    rank = {v: 0 for v in consumers}
    ready = [v for v, n in waiting.items() if n == 0]
    order: list[str] = []
    while ready:
        v = ready.pop()
        order.append(v)
        for p in producers[v]:
            rank[p] = max(rank[p], rank[v] + 1)
            waiting[p] -= 1
            if waiting[p] == 0:
                ready.append(p)
    last = max(rank.values(), default=0)
    columns: dict[int, list[str]] = {}
    for n in graph.nodes:  # discovery order breaks ties
        columns.setdefault(last - rank[n.id], []).append(n.id)
    pos: dict[str, tuple[float, float]] = {}
    for col in sorted(columns, reverse=True):  # right (output) to left
        ids = columns[col]
        key = {v: np.mean([pos[c][1] for c in consumers[v]]) if consumers[v] else 0.0 for v in ids}
        ids = sorted(ids, key=lambda v: -key[v])  # stable: keeps discovery order on ties
        ys = [key[v] for v in ids]
        for i in range(1, len(ys)):  # push apart to at least one row, top to bottom
            ys[i] = min(ys[i], ys[i - 1] - 1.0)
        shift = np.mean([key[v] for v in ids]) - np.mean(ys)  # then re-centre the column
        for v, y in zip(ids, ys):
            pos[v] = (float(col), float(y + shift))
    return pos


def _fmt(values: Any) -> str:
    values = np.asarray(values, dtype=float) + 0.0  # + 0.0 turns -0.0 into 0.0
    return np.array2string(values, precision=3, separator=", ")


def _tensor_text(n: GraphNode, show_values: bool, show_grads: bool) -> str:
    lines = [n.label] if n.label else []
    lines.append(f"shape {n.shape}")
    if show_values and n.value is not None:
        lines.append(f"data {_fmt(n.value)}")
    if show_grads and n.grad is not None:
        lines.append(f"grad {_fmt(n.grad)}")
    return "\n".join(lines)


def _color(n: GraphNode, output_id: str) -> str:
    if n.kind == "op":
        return "#fde2b8"  # orange: an op
    if n.id == output_id:
        return "#cdeccd"  # green: the output
    if n.is_leaf and n.requires_grad:
        return "#cfe2f7"  # blue: a leaf that receives .grad
    return "#eeeeee"  # grey: an intermediate result


def draw_graph(
    tensor: Tensor,
    ax: Axes | None = None,
    show_values: bool = True,
    show_grads: bool = True,
    names: Mapping[str, Tensor] | None = None,
) -> Figure:
    """Draw the graph that produced ``tensor`` and return the matplotlib ``Figure``.

    Boxes are tensors (shape, values when small, ``.grad`` when set), ellipses are ops.
    Blue boxes are leaves that will receive ``.grad``, grey ones intermediate results,
    the green one ``tensor`` itself. Pass ``ax`` to draw into your own axes; otherwise a
    new figure is made *outside* pyplot: in Jupyter it shows when it is the cell's value
    (or with ``display(fig)``), in a script save it with ``fig.savefig("graph.png")``.
    Our own figure is sized to fit the boxes; text keeps its size in points, so an ``ax``
    you pass needs room (about 2 inches per column) or the boxes overlap.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    graph = graph_nodes(tensor, names)
    pos = layout(graph)
    own_figure = ax is None
    if own_figure:
        fig = Figure()
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    fig = ax.figure
    if not hasattr(fig.canvas, "get_renderer"):  # a bare Figure() has no canvas to draw on
        FigureCanvasAgg(fig)
    output_id = graph.nodes[0].id
    texts, is_op = {}, {n.id: n.kind == "op" for n in graph.nodes}
    for n in graph.nodes:
        if n.kind == "op":
            text, style = n.label, "ellipse,pad=0.3"
        else:
            text, style = _tensor_text(n, show_values, show_grads), "round,pad=0.4"
        texts[n.id] = ax.text(
            *pos[n.id], text, ha="center", va="center", fontsize=8, family="monospace",
            zorder=3, bbox={"boxstyle": style, "fc": _color(n, output_id), "ec": "0.35"},
        )  # fmt: skip
    # 1. Measure every box in inches (drawing once sizes the boxes around the texts).
    fig.canvas.draw()
    half = {}
    for key, t in texts.items():
        box = t.get_bbox_patch().get_window_extent()
        half[key] = (box.width / fig.dpi / 2, box.height / fig.dpi / 2)
    # 2. Lay the columns out in inches, each as wide as its widest box.
    ncols = 1 + int(max(x for x, _ in pos.values()))
    col_w = [
        max((2 * half[k][0] for k, (x, _) in pos.items() if x == c), default=1.0)
        for c in range(ncols)
    ]
    gap = 0.45
    left = np.concatenate([[0.0], np.cumsum(np.array(col_w) + gap)])
    row_h = 2 * max(h for _, h in half.values()) + 0.3
    pos = {k: (left[int(x)] + col_w[int(x)] / 2, y * row_h) for k, (x, y) in pos.items()}
    for key, t in texts.items():
        t.set_position(pos[key])
    top = max(y for _, y in pos.values()) + row_h / 2 + 0.1
    bottom = min(y for _, y in pos.values()) - row_h / 2 - 0.1
    right = left[-1] - gap + 0.1
    if own_figure:
        fig.set_size_inches(right + 0.1, top - bottom)
    ax.set_xlim(-0.1, right)
    ax.set_ylim(bottom, top)
    ax.set_axis_off()
    # 3. Arrows from border to border. Data units are inches in our own figure; in a
    #    given axes, scale the box sizes by that axes' data units per inch.
    extent = ax.get_window_extent()
    sx = (right + 0.1) / (extent.width / fig.dpi)
    sy = (top - bottom) / (extent.height / fig.dpi)
    seen: dict[tuple[str, str], int] = {}
    for src, dst in graph.edges:
        # a repeated edge (x * x) or one that skips columns bends, so arrows don't overlap
        repeat = seen[(src, dst)] = seen.get((src, dst), -1) + 1
        skips = abs(pos[dst][0] - pos[src][0]) > max(col_w) + gap + 0.1
        rad = 0.3 * (-1) ** repeat if repeat else (0.25 if skips else 0.0)
        dx, dy = pos[dst][0] - pos[src][0], pos[dst][1] - pos[src][1]
        start = _border(pos[src], (dx, dy), half[src], (sx, sy), is_op[src])
        end = _border(pos[dst], (-dx, -dy), half[dst], (sx, sy), is_op[dst])
        ax.annotate(
            "", xy=end, xytext=start, zorder=1,
            arrowprops={
                "arrowstyle": "-|>", "color": "0.35", "shrinkA": 0, "shrinkB": 0,
                "connectionstyle": f"arc3,rad={rad}",
            },
        )  # fmt: skip
    return fig


def _border(
    center: tuple[float, float],
    direction: tuple[float, float],
    half: tuple[float, float],
    scale: tuple[float, float],
    is_ellipse: bool,
) -> tuple[float, float]:
    """Where a ray from ``center`` along ``direction`` leaves a box (or an ellipse)."""
    hw, hh = half[0] * scale[0], half[1] * scale[1]
    dx, dy = direction
    if is_ellipse:
        t = 1.0 / max(np.hypot(dx / hw, dy / hh), 1e-12)
    else:
        t = min(hw / abs(dx) if dx else np.inf, hh / abs(dy) if dy else np.inf)
    return center[0] + t * dx, center[1] + t * dy

"""Activation checkpointing (``torch.utils.checkpoint``): keep a segment's inputs, not its insides.

Backward needs what each op saved in forward (inputs of ``linear``, softmax probabilities,
dropout masks ...). For a deep network those *activations* dominate memory: ``L`` layers keep
``L`` layers' worth. ``checkpoint(fn, x)`` trades compute for memory::

    forward:   out = fn(x)            the graph keeps only x (and fn, and the RNG state)
    backward:  out' = fn(x) again     same inputs, same dropout masks (RNG state replayed)
               dL/dx, dL/dW = backward of out' with the gradient that reached out

so the insides of ``fn`` live only while its own backward runs. The recomputed forward is
the same sequence of NumPy operations on the same inputs, so every number — and therefore
every gradient — is the same bit for bit as without checkpointing.

How it sits in the graph: the outputs get ONE node, :class:`CheckpointNode`, whose edges
lead to the tensor inputs *and* to every leaf that requires grad which ``fn`` used without
being handed it (the parameters of a module). Those leaves are found once, in forward: ``fn``
runs with grad on over detached inputs, and the graph it builds is walked down to its leaves
and then dropped (freeing everything it saved). So parameters get their gradients from the
engine as usual (hooks, DDP buckets, ``sg.autograd.grad`` all work), which is PyTorch's
``use_reentrant=False`` behaviour.

``use_reentrant=True`` is PyTorch's older variant, kept for tutorials that name it: forward
runs under ``no_grad`` (nothing is recorded at all), the node's edges are the tensor inputs
only, and backward runs a *nested* ``backward()`` over the recomputed graph that adds the
parameters' gradients straight into their ``.grad``. As in PyTorch, it warns "None of the
inputs have requires_grad=True" when no tensor input requires grad (the parameters then get
no gradient), and it takes no keyword arguments for ``fn``. Unlike PyTorch it does not detect
``sg.autograd.grad`` over it (PyTorch raises; here the parameters' ``.grad`` would be filled).

Under ``no_grad`` the non-reentrant variant is a plain call of ``fn``, without a warning
(PyTorch 2.13 does the same). ``use_reentrant=None`` warns as PyTorch 2.13 does and means
``True`` (PyTorch's current default); sparkgrad's own default is ``False``.

Limit: a *non-leaf* tensor that requires grad and that ``fn`` reads from a closure (instead of
receiving it as an argument) is backpropagated through during the nested backward; if the
rest of the graph also backpropagates through it, the engine raises "backward through the
graph a second time". Pass such tensors as arguments (PyTorch's advice too).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from typing import Any

from sparkgrad.autodiff.function import Context, Node, edge_to
from sparkgrad.autodiff.grad_mode import enable_grad, is_grad_enabled, no_grad
from sparkgrad.autodiff.graph import _roots, _walk, topological_order
from sparkgrad.autodiff.graph import backward as run_backward
from sparkgrad.autodiff.random import default_generator
from sparkgrad.autodiff.saved_memory import observe_recomputation
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.autodiff.versions import SavedVersion

__all__ = ["CheckpointNode", "checkpoint", "checkpoint_sequential"]

_NO_GRAD_INPUTS = "None of the inputs have requires_grad=True. Gradients will be None"


def checkpoint(
    function: Callable[..., Any],
    *args: Any,
    use_reentrant: bool | None = False,
    preserve_rng_state: bool = True,
    **kwargs: Any,
) -> Any:
    """``function(*args, **kwargs)``, recomputed in backward instead of keeping its insides.

    ``preserve_rng_state=True`` replays the random generator's state, so dropout inside
    ``function`` draws the same masks in the recomputation as in forward.
    """
    if use_reentrant is None:
        warnings.warn(
            "torch.utils.checkpoint: the use_reentrant parameter should be passed explicitly. "
            "use_reentrant=False is recommended (and sparkgrad's default); None means True, "
            "PyTorch's current default.",
            stacklevel=2,
        )
        use_reentrant = True
    if use_reentrant:
        if kwargs:
            raise ValueError("Unexpected keyword arguments: " + ",".join(kwargs))
        return _reentrant(function, args, preserve_rng_state)
    if not is_grad_enabled():
        return function(*args, **kwargs)
    return _non_reentrant(function, args, kwargs, preserve_rng_state)


def checkpoint_sequential(
    functions: Any,
    segments: int,
    input: Tensor,  # noqa: A002 - PyTorch's name
    use_reentrant: bool | None = False,
    preserve_rng_state: bool = True,
) -> Tensor:
    """Run ``functions`` (a ``Sequential`` or a list) in ``segments`` chunks, each checkpointed.

    As PyTorch: ``len(functions) // segments`` functions per chunk, and the last chunk (with
    what is left over) runs normally — its activations are needed first in backward anyway.
    With ``segments = sqrt(L)`` the graph holds ``sqrt(L) - 1`` chunk inputs plus one chunk's
    activations: O(sqrt(L)) instead of O(L).
    """
    functions = list(functions.children()) if hasattr(functions, "children") else list(functions)
    if not isinstance(segments, int) or not 1 <= segments <= len(functions):
        raise ValueError(
            f"checkpoint_sequential: segments must be an int in [1, {len(functions)}] (the "
            f"number of functions), found {segments!r}"
        )
    size = len(functions) // segments
    end = -1
    for start in range(0, size * (segments - 1), size):
        end = start + size - 1
        input = checkpoint(
            _run_range(functions, start, end), input,
            use_reentrant=use_reentrant, preserve_rng_state=preserve_rng_state,
        )  # fmt: skip
    return _run_range(functions, end + 1, len(functions) - 1)(input)


def _run_range(functions: Sequence[Any], start: int, end: int) -> Callable[[Any], Any]:
    def forward(x: Any) -> Any:
        for j in range(start, end + 1):
            x = functions[j](x)
        return x

    return forward


# -- the node --------------------------------------------------------------------------------


class CheckpointNode(Node):
    """The one node of a checkpointed call: backward = recompute, then backpropagate.

    ``ctx.saved_tensors`` holds the arrays of the tensor inputs (what a checkpoint costs);
    ``ctx`` also holds the function, the non-tensor arguments, the RNG state and the
    boundary leaves (parameters) whose gradients this node hands back.
    """

    __slots__ = ()

    def name(self) -> str:
        return "CheckpointFunctionBackward" if self.ctx.reentrant else "CheckpointBackward"

    def run_backward(self, grad: Any) -> tuple[Any, ...]:
        for saved in self.saved_versions:
            saved.check(self)
        ctx = self.ctx
        grads = grad if isinstance(grad, list) else [grad]
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in ctx.inputs]
        outs = _recompute(ctx, inputs)
        pairs = [(o, g) for o, g in zip(outs, grads) if _differentiable(o) and g is not None]
        if ctx.reentrant:
            if pairs:
                run_backward([o for o, _ in pairs], [g for _, g in pairs])
            return tuple(t.grad.array if t.grad is not None else None for t in inputs)
        wanted = [t for t in inputs if t.requires_grad] + list(ctx.leaves)
        found: dict[int, Any] = {}
        if pairs and wanted:  # sg.autograd.grad's walk, without its copies: a copy would
            # change the arrays' memory order and so the order of later float sums
            roots = _roots([o for o, _ in pairs], [g for _, g in pairs])
            found = _walk(roots, False, capture={id(t): t for t in wanted})
        result = [found.get(id(t)) if t.requires_grad else None for t in inputs]
        return tuple(result + [found.get(id(t)) for t in ctx.leaves])


def _recompute(ctx: Context, inputs: list[Tensor]) -> list[Any]:
    """Run the function again on fresh leaves, with grad on and the forward's RNG state."""
    args = list(ctx.args)
    for pos, t in zip(ctx.tensor_positions, inputs):
        args[pos] = t
    with _rng_replayed(ctx.rng_state), enable_grad():
        out = ctx.function(*args, **ctx.kwargs)
    outs = _as_list(out)
    observe_recomputation(outs)  # an ActivationTracker measures this moment (the peak)
    return outs


@contextmanager
def _rng_replayed(state: dict | None):
    """Draw from ``state`` inside, and continue the caller's stream afterwards."""
    if state is None:
        yield
        return
    generator = default_generator()
    current = generator.get_state()
    generator.set_state(state)
    try:
        yield
    finally:
        generator.set_state(current)


# -- forward ---------------------------------------------------------------------------------


def _non_reentrant(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict, preserve: bool
) -> Any:
    ctx = _context(function, args, kwargs, preserve, reentrant=False)
    call_args = list(args)
    for pos, t in zip(ctx.tensor_positions, ctx.inputs):  # detached: the walk stops there
        call_args[pos] = t
    with enable_grad():  # record, to find the parameters; the graph is dropped on return
        out = function(*call_args, **kwargs)
    ctx.leaves = _boundary_leaves(_as_list(out), ctx.inputs)
    return _wrap_outputs(out, ctx, args, ctx.leaves, lambda o: o.requires_grad)


def _reentrant(function: Callable[..., Any], args: tuple[Any, ...], preserve: bool) -> Any:
    if not any(isinstance(a, Tensor) and a.requires_grad for a in args):
        warnings.warn(_NO_GRAD_INPUTS, stacklevel=3)
    ctx = _context(function, args, {}, preserve, reentrant=True)
    with no_grad():
        out = function(*args)
    ctx.leaves = ()
    return _wrap_outputs(out, ctx, args, (), _is_floating)  # as torch: every float output


def _context(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict, preserve: bool,
    reentrant: bool,
) -> Context:  # fmt: skip
    ctx = Context()
    ctx.function, ctx.kwargs, ctx.reentrant = function, kwargs, reentrant
    ctx.tensor_positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
    ctx.args = [None if isinstance(a, Tensor) else a for a in args]
    ctx.inputs = [args[i].detach() for i in ctx.tensor_positions]
    for t, i in zip(ctx.inputs, ctx.tensor_positions):
        t.requires_grad = args[i].requires_grad
    ctx.rng_state = default_generator().get_state() if preserve else None
    ctx.save_for_backward(*(t.array for t in ctx.inputs))
    return ctx


def _boundary_leaves(outs: list[Any], inputs: list[Tensor]) -> tuple[Tensor, ...]:
    """The leaves requiring grad that the outputs depend on, other than the inputs given."""
    roots = [edge_to(o) for o in outs if isinstance(o, Tensor)]
    roots = [r for r in roots if r is not None]
    given = {id(t) for t in inputs}
    found = []
    for vertex in topological_order(roots):
        if isinstance(vertex, Tensor) and id(vertex) not in given:
            found.append(vertex)
    return tuple(found)


def _wrap_outputs(
    out: Any, ctx: Context, args: tuple[Any, ...], leaves: tuple, needs: Callable[[Tensor], bool]
) -> Any:
    """New output tensors on the same arrays, hung on one :class:`CheckpointNode`."""
    outs = _as_list(out)
    fresh = [Tensor._wrap(o.array) if isinstance(o, Tensor) else o for o in outs]
    edges = tuple(edge_to(args[i]) for i in ctx.tensor_positions) + tuple(leaves)
    tensors = [o for o in fresh if isinstance(o, Tensor)]
    if is_grad_enabled() and tensors and any(e is not None for e in edges):
        node = CheckpointNode(checkpoint, ctx, edges, tensors[0])
        node.n_outputs = len(fresh)
        node.saved_versions = tuple(SavedVersion.of(args[i], "input") for i in ctx.tensor_positions)
        for i, (o, original) in enumerate(zip(fresh, outs)):
            if isinstance(original, Tensor) and needs(original):
                o.requires_grad = True
                o._set_node(node)
                o._output_nr = i
    if isinstance(out, Tensor):
        return fresh[0]
    return type(out)(fresh) if isinstance(out, (tuple, list)) else out


def _as_list(out: Any) -> list[Any]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _differentiable(o: Any) -> bool:
    return isinstance(o, Tensor) and o.requires_grad


def _is_floating(t: Tensor) -> bool:
    return t.array.dtype.kind == "f" or t.array.dtype.name == "bfloat16"

"""The graph's memory: what backward frees, and how deep a graph may be.

During the forward pass every op keeps the arrays its backward will need. After
``backward()`` those are garbage: a training loop that kept them would grow by one
graph per step. The graph is made of nodes (each op's ``grad_fn``), which hold the arrays
their backward needs, not the intermediate tensors. Here weak references (which do not
keep an object alive) watch those nodes and their saved arrays, with the cyclic garbage
collector switched off, so only plain reference counting frees them, as it must in a
real loop.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch

import sparkgrad as sg
import sparkgrad.autodiff.functional as F
from sparkgrad.errors import GradError


@pytest.fixture
def no_cyclic_gc():
    """Disable the cycle collector: a graph that needs it to be freed is a leak in practice."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def _graph(x, w):
    """A small MLP-like graph with several kinds of saved arrays."""
    h = F.linear(x, w)
    a = F.tanh(h)
    b = F.log(a * a + 1.0)
    return F.cross_entropy(b, sg.tensor([0, 2])), [h, a, b]


def _weakrefs_to_intermediates(intermediates, leaves):
    """Weak refs to each intermediate's node and to every non-leaf array its op saved."""
    leaf_arrays = {id(t.array) for t in leaves}
    refs = []
    for t in intermediates:
        refs.append(weakref.ref(t.grad_fn))
        for arr in t.grad_fn.ctx.saved_tensors:
            if isinstance(arr, np.ndarray) and id(arr) not in leaf_arrays:
                refs.append(weakref.ref(arr))
    return refs


def test_backward_frees_intermediates_and_saved_arrays(no_cyclic_gc):
    """After backward only the leaves (with their grads) and the loss itself stay alive."""
    x = sg.randn(2, 4, requires_grad=True)
    w = sg.randn(3, 4, requires_grad=True)
    loss, intermediates = _graph(x, w)
    refs = _weakrefs_to_intermediates(intermediates, [x, w])
    saved_by_loss = [weakref.ref(a) for a in loss.grad_fn.ctx.saved_tensors if hasattr(a, "shape")]
    del intermediates
    assert len(refs) >= 5  # 3 nodes + the arrays tanh and log saved
    assert all(r() is not None for r in refs), "before backward the loss keeps the graph alive"
    loss.backward()
    dead = [r() is None for r in refs + saved_by_loss]
    assert all(dead), f"{dead.count(False)} of {len(dead)} intermediates survived backward"
    assert x.grad is not None and w.grad is not None  # leaf grads are kept
    assert loss.item() == loss.item()  # the loss value itself is still usable (logging)


def test_a_dropped_graph_without_backward_is_freed(no_cyclic_gc):
    """Evaluating a loss and dropping it (no backward) frees everything too."""
    x = sg.randn(2, 4, requires_grad=True)
    w = sg.randn(3, 4, requires_grad=True)
    loss, intermediates = _graph(x, w)
    refs = _weakrefs_to_intermediates(intermediates, [x, w]) + [weakref.ref(loss)]
    del intermediates, loss
    assert all(r() is None for r in refs)


def test_retain_graph_allows_a_second_backward_that_accumulates():
    """``retain_graph=True`` keeps the saved arrays; the second backward adds to ``.grad``."""
    x_np = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    x, t = sg.tensor(x_np, requires_grad=True), torch.tensor(x_np, requires_grad=True)
    y, ty = (x.exp() * x).sum(), (t.exp() * t).sum()
    y.backward(retain_graph=True)
    y.backward()
    ty.backward(retain_graph=True)
    ty.backward()
    np.testing.assert_allclose(x.grad.numpy(), t.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_second_backward_without_retain_graph_is_a_clear_error():
    """The graph was freed by the first backward: say so, and name the fix."""
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp().sum()
    y.backward()
    with pytest.raises(GradError, match="retain_graph=True"):
        y.backward()


def test_backward_through_a_part_freed_by_an_earlier_backward_is_an_error():
    """Two losses share ``h``; the first backward freed h's node: the second must raise.

    torch raises here too, because ``exp`` saved its output and that was freed.
    """
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    h = x.exp()
    first, second = h.sum(), (h * 3).sum()
    first.backward()
    with pytest.raises(GradError, match="second time"):
        second.backward()


def test_ten_thousand_op_chain_backpropagates_without_recursion():
    """A 10,000-op chain: the topological sort and the freeing must not recurse.

    y = x · c^10000, so dy/dx = c^10000, computed here in float64 as the truth (the
    float32 chain rounds 10,000 times, hence rtol 1e-3).
    """
    c = 1.0001
    x = sg.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * c
    y.backward()
    np.testing.assert_allclose(x.grad.item(), c**10_000, rtol=1e-3)


def test_dropping_a_deep_graph_without_backward_does_not_crash():
    """Deallocating 10,000 nested nodes must not hit the C stack limit."""
    x = sg.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y + 1.0
    ref = weakref.ref(y)
    del y
    gc.collect()
    assert ref() is None

"""What backward writes: accumulation, aliasing, hooks and ``retain_grad``.

PyTorch's contract, checked against PyTorch itself:

- ``.grad`` of a leaf *accumulates* over backward calls (that is why optimizers call
  ``zero_grad``), and a tensor used twice gets the sum of both paths.
- Each leaf owns its ``.grad``: ``a + b`` hands the same upstream array to both inputs,
  and an in-place update of ``a.grad`` must not change ``b.grad`` (or your gradient).
- Hooks see a gradient as it flows and may replace it; they can be removed.
"""

from __future__ import annotations

import numpy as np
import torch

import sparkgrad as sg


def _pair(values, dtype=np.float32):
    """The same leaf in sparkgrad and in torch."""
    arr = np.asarray(values, dtype=dtype)
    return sg.tensor(arr, requires_grad=True), torch.tensor(arr, requires_grad=True)


def _same(sg_t, torch_t):
    np.testing.assert_allclose(sg_t.detach().numpy(), torch_t.detach().numpy(), rtol=1e-6)


def test_leaf_grad_accumulates_across_backward_calls():
    """Two separate graphs on the same leaf: ``.grad`` is the sum, exactly as torch."""
    x, t = _pair([1.0, -2.0, 3.0])
    for fn in (lambda v: (v * v).sum(), lambda v: v.exp().sum()):
        fn(x).backward()
        fn(t).backward()
    _same(x.grad, t.grad)


def test_a_tensor_used_twice_gets_both_paths():
    """x feeds two branches of one graph: its gradient adds the two contributions."""
    x, t = _pair([0.5, 1.5])
    (x * x.exp() + x.tanh()).sum().backward()
    (t * t.exp() + t.tanh()).sum().backward()
    _same(x.grad, t.grad)
    y, u = _pair([2.0, -1.0])
    (y + y).sum().backward()  # both inputs of one Add are the same leaf
    (u + u).sum().backward()
    _same(y.grad, u.grad)


def test_leaf_grads_never_alias_each_other():
    """``a + b`` gives both leaves the same upstream gradient *values*, not the same array."""
    a, b = _pair([1.0, 2.0])[0], _pair([3.0, 4.0])[0]
    (a + b).sum().backward()
    with sg.no_grad():
        a.grad.mul_(10)
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])
    c, d = _pair([1.0])[0], _pair([2.0])[0]
    (c.reshape(1) + d.reshape(1)).sum().backward()  # views of the gradient, also separate
    with sg.no_grad():
        c.grad.add_(5)
    np.testing.assert_array_equal(d.grad.numpy(), [1.0])


def test_leaf_grad_does_not_alias_the_gradient_you_pass():
    """``y.backward(g)``: updating a leaf's ``.grad`` afterwards must leave ``g`` untouched."""
    a, b = _pair([1.0, 2.0])[0], _pair([3.0, 4.0])[0]
    g = sg.tensor([0.5, 0.25])
    (a + b).backward(g)
    (a.clone()).backward(g)  # accumulation must not write into g either
    with sg.no_grad():
        a.grad.zero_()
        b.grad.zero_()
    np.testing.assert_array_equal(g.numpy(), [0.5, 0.25])


def test_non_scalar_backward_with_an_explicit_gradient():
    """``y.backward(v)`` computes the vector-Jacobian product vᵀ·J, as torch."""
    x, t = _pair([[1.0, 2.0], [3.0, 4.0]])
    v = np.array([[1.0, -1.0], [0.5, 2.0]], dtype=np.float32)
    (x * x).backward(sg.tensor(v))
    (t * t).backward(torch.tensor(v))
    _same(x.grad, t.grad)


def test_register_hook_can_replace_the_gradient_and_be_removed():
    """A hook returning a tensor replaces the gradient downstream; ``remove()`` undoes it."""
    x, t = _pair([1.0, 2.0])
    y, u = x * 3, t * 3
    handle = y.register_hook(lambda g: g * 2)
    t_handle = u.register_hook(lambda g: g * 2)
    (y * y).sum().backward(retain_graph=True)
    (u * u).sum().backward(retain_graph=True)
    _same(x.grad, t.grad)
    handle.remove()
    t_handle.remove()
    (y * y).sum().backward()
    (u * u).sum().backward()
    _same(x.grad, t.grad)


def test_hook_on_a_leaf_changes_what_is_accumulated():
    """A leaf hook sees the incoming gradient before it is added to ``.grad``."""
    x, t = _pair([1.0, -1.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.numpy().copy()) or g.clamp(min=0))
    t.register_hook(lambda g: g.clamp(min=0))
    (x * sg.tensor([2.0, -3.0])).sum().backward()
    (t * torch.tensor([2.0, -3.0])).sum().backward()
    np.testing.assert_array_equal(seen[0], [2.0, -3.0])
    _same(x.grad, t.grad)


def test_post_accumulate_grad_hook_runs_after_grad_is_set():
    """The hook gets the leaf itself, once per backward, with ``.grad`` already updated."""
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    log = []
    handle = x.register_post_accumulate_grad_hook(lambda leaf: log.append(leaf.grad.numpy().copy()))
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(log, [[2.0, 2.0], [5.0, 5.0]])
    handle.remove()
    (x * 1).sum().backward()
    assert len(log) == 2


def test_retain_grad_keeps_the_gradient_of_an_intermediate():
    """Non-leaf tensors drop their gradient unless ``retain_grad()`` asks to keep it."""
    x, t = _pair([0.3, -0.7])
    h, ht = x.tanh(), t.tanh()
    other = x * 2
    h.retain_grad()
    ht.retain_grad()
    (h * h + other).sum().backward()
    (ht * ht + t * 2).sum().backward()
    _same(h.grad, ht.grad)
    assert other.grad is None
    _same(x.grad, t.grad)


def test_retained_grad_accumulates_like_a_leaf_grad():
    """Two backward passes through a retained intermediate add up its ``.grad`` (torch does)."""
    x, t = _pair([0.5, -1.0])
    h, ht = x * 2, t * 2
    h.retain_grad()
    ht.retain_grad()
    y, yt = (h * h).sum(), (ht * ht).sum()
    y.backward(retain_graph=True)
    y.backward()
    yt.backward(retain_graph=True)
    yt.backward()
    _same(h.grad, ht.grad)


def test_only_leaves_that_require_grad_receive_one():
    """Constants in the graph get no ``.grad``; the graph skips their branches."""
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    c = sg.tensor([3.0, 4.0])
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])

"""In-place updates against PyTorch: ``x += y``, ``x.add_(y)``, ``x[i] = v`` change the tensor.

The silent bug these tests keep out: ``with no_grad(): w -= lr * w.grad`` once bound ``w`` to
a new tensor, so a learner's first training loop never trained. Every case runs the same
program on sparkgrad and on torch and compares values, gradients, versions and errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad.errors import GradError, InPlaceError, ShapeError


def run_both(program):
    """``program(lib)`` with ``lib`` = sparkgrad, then torch; results as nested lists."""
    return [_plain(program(lib)) for lib in (sg, torch)]


def _plain(value):
    if isinstance(value, (sg.Tensor, torch.Tensor)):
        return value.detach().tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def assert_same(program, rtol=1e-6):
    ours, theirs = run_both(program)
    np.testing.assert_allclose(np.asarray(ours, dtype=object).tolist(), theirs, rtol=rtol)


# ---- the learner's loop ---------------------------------------------------------------------
def test_manual_sgd_loop_trains_like_pytorch():
    """The polynomial fit of "Learning PyTorch with Examples": a, b, c, d updated by hand.

    Before the fix sparkgrad's loss stayed flat (the names were rebound to new tensors).
    """
    rng = np.random.default_rng(0)
    x_np = np.linspace(-np.pi, np.pi, 200, dtype=np.float32)
    y_np = np.sin(x_np).astype(np.float32)
    start = rng.standard_normal(4).astype(np.float32)

    def program(lib):
        x, y = lib.tensor(x_np), lib.tensor(y_np)
        a, b, c, d = (lib.tensor(float(v), requires_grad=True) for v in start)
        ids = [id(t) for t in (a, b, c, d)]
        losses = []
        for _ in range(300):
            y_pred = a + b * x + c * x**2 + d * x**3
            loss = (y_pred - y).pow(2).sum()
            losses.append(loss.item())
            loss.backward()
            with lib.no_grad():
                a -= 1e-6 * a.grad
                b -= 1e-6 * b.grad
                c -= 1e-6 * c.grad
                d -= 1e-6 * d.grad
                a.grad = b.grad = c.grad = d.grad = None
        assert [id(t) for t in (a, b, c, d)] == ids and all(t.is_leaf for t in (a, b, c, d))
        return losses[::50] + [losses[-1]], [a, b, c, d]

    (ours, w_ours), (theirs, w_theirs) = run_both(program)
    assert theirs[-1] < 0.5 * theirs[0]  # the loop really trains
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    np.testing.assert_allclose(w_ours, w_theirs, rtol=1e-4, atol=1e-6)


def test_updating_model_parameters_in_a_loop_changes_the_model():
    """``for p in model.parameters(): p -= lr * p.grad`` ("What is torch.nn really?")."""
    model = sg.nn.Linear(3, 2)
    before = [p.detach().clone() for p in model.parameters()]
    model(sg.ones(4, 3)).sum().backward()
    with sg.no_grad():
        for p in model.parameters():
            p -= 0.1 * p.grad
    for p, b in zip(model.parameters(), before):
        np.testing.assert_allclose(p.detach().numpy(), (b - 0.1 * p.grad).numpy(), rtol=1e-6)
        assert isinstance(p, sg.nn.Parameter) and p.requires_grad and p.is_leaf


def test_sgd_momentum_on_a_0_dim_parameter_equals_pytorch():
    """Two momentum steps of (3p).sum() on p = tensor(1.0): 0.13, not the buggy 0.43."""

    def program(lib):
        p = lib.tensor(1.0, requires_grad=True)
        opt = lib.optim.SGD([p], lr=0.1, momentum=0.9)
        for _ in range(2):
            opt.zero_grad()
            (p * 3).sum().backward()
            opt.step()
        return p

    ours, theirs = run_both(program)
    assert theirs == pytest.approx(0.13) and ours == pytest.approx(theirs, rel=1e-6)


def test_a_numpy_scalar_becomes_a_0_dim_tensor_that_an_optimizer_updates():
    p = sg.tensor(np.float32(1.5), requires_grad=True)
    assert isinstance(p.array, np.ndarray) and p.shape == () and p.dtype == np.float32
    opt = sg.optim.SGD([p], lr=0.5)
    (p * 2).backward()
    opt.step()
    assert p.item() == pytest.approx(0.5)


# ---- every in-place method, values and identity -------------------------------------------
UPDATES = {
    "iadd": lambda t, L: t.__iadd__(L.tensor([1.0, 2.0, 3.0])),
    "isub": lambda t, L: t.__isub__(2.5),
    "imul": lambda t, L: t.__imul__(L.tensor([2.0, -1.0, 0.5])),
    "itruediv": lambda t, L: t.__itruediv__(4.0),
    "ipow": lambda t, L: t.__ipow__(2),
    "add_alpha": lambda t, L: t.add_(L.tensor([1.0, 1.0, 1.0]), alpha=-3),
    "sub_alpha": lambda t, L: t.sub_(L.tensor([1.0, 2.0, 3.0]), alpha=0.5),
    "mul_": lambda t, L: t.mul_(3),
    "div_": lambda t, L: t.div_(L.tensor([2.0, 4.0, 8.0])),
    "zero_": lambda t, L: t.zero_(),
    "fill_": lambda t, L: t.fill_(7.5),
    "fill_tensor": lambda t, L: t.fill_(L.tensor(2.0)),
    "copy_": lambda t, L: t.copy_(L.tensor([9.0, 8.0, 7.0])),
    "copy_broadcast": lambda t, L: t.copy_(L.tensor(4.0)),
    "clamp_": lambda t, L: t.clamp_(min=-1.0, max=1.5),
    "clamp_min": lambda t, L: t.clamp_(min=0.0),
    "masked_fill_": lambda t, L: t.masked_fill_(L.tensor([True, False, True]), -4.0),
    "neg_": lambda t, L: t.neg_(),
    "abs_": lambda t, L: t.abs_(),
    "exp_": lambda t, L: t.exp_(),
    "relu_": lambda t, L: t.relu_(),
    "sigmoid_": lambda t, L: t.sigmoid_(),
    "tanh_": lambda t, L: t.tanh_(),
    "addcmul_": lambda t, L: t.addcmul_(
        L.tensor([1.0, 2.0, 3.0]), L.tensor([2.0, 2.0, 2.0]), value=0.5
    ),
    "addcdiv_": lambda t, L: t.addcdiv_(
        L.tensor([1.0, 2.0, 3.0]), L.tensor([2.0, 4.0, 8.0]), value=2
    ),
}


@pytest.mark.parametrize("name", UPDATES)
def test_in_place_update_changes_the_tensor_itself(name):
    """Same values as torch; same object, storage, dtype; views see it; version goes up."""

    def storage(t):
        return id(t.array) if isinstance(t, sg.Tensor) else t.data_ptr()

    def program(lib):
        t = lib.tensor([1.0, -2.0, 3.0])
        view, before = t[1:], storage(t)
        assert UPDATES[name](t, lib) is t
        assert storage(t) == before
        return t, view, t._version

    ours, theirs = run_both(program)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-6)
    assert ours[2] == theirs[2] == 1


@pytest.mark.parametrize("name", UPDATES)
def test_in_place_update_of_a_leaf_under_no_grad_keeps_it_a_leaf(name):
    def program(lib):
        t = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
        with lib.no_grad():
            UPDATES[name](t, lib)
        return t, t.is_leaf, t.requires_grad, t.grad_fn is None

    ours, theirs = run_both(program)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
    assert ours[1:] == theirs[1:] == [True, True, True]


def test_in_place_on_a_leaf_that_requires_grad_is_refused_outside_no_grad():
    w = sg.tensor([1.0, 2.0], requires_grad=True)
    for update in (lambda: w.__iadd__(1), lambda: w.mul_(2), lambda: w.__setitem__(0, 5.0)):
        with pytest.raises(GradError, match="a leaf Variable that requires grad is being used"):
            update()
    with pytest.raises(GradError, match="a view of a leaf Variable that requires grad"):
        w[0:1].add_(1)
    with pytest.raises(RuntimeError):  # PyTorch raises the same
        torch.tensor([1.0, 2.0], requires_grad=True).add_(1)
    assert w.tolist() == [1.0, 2.0] and w._version == 0  # nothing was half-done


def test_data_and_grad_data_are_tensors_sharing_storage():
    """``p.data.add_(...)`` and ``p.grad.data /= n`` (the DDP tutorial) update in place."""

    def program(lib):
        p = lib.tensor([1.0, 2.0], requires_grad=True)
        (p * p).sum().backward()
        p.data.add_(p.grad.data, alpha=-0.5)  # p - 0.5 * 2p = 0
        p.grad.data /= 2
        return p, p.grad, p._version, p.data._version, p.is_leaf

    ours, theirs = run_both(program)
    assert ours == theirs


def test_version_counters_match_pytorch_across_views_detach_and_data():
    def program(lib):
        x = lib.tensor([1.0, 2.0, 3.0])
        v, w = x[0:2], x.view(3)
        seen = [x._version]
        v += 1
        seen.append(x._version)
        x.data.add_(1)  # .data: its own counter, as in PyTorch
        seen.append(x._version)
        x.detach().add_(1)  # detach(): the same counter
        seen.append(x._version)
        x[0] = 5
        x.zero_()
        seen += [x._version, v._version, w._version]
        return seen

    ours, theirs = run_both(program)
    assert ours == theirs == [0, 1, 1, 2, 4, 4, 4]


# ---- in-place inside a recorded graph ---------------------------------------------------------
GRAPHS = {
    "mul_after_mul": lambda x, L: _then((x * 3).__imul__(2), lambda y: y.sum()),
    "add_on_a_product": lambda x, L: _then((x * x).add_(x), lambda y: (y * y).sum()),
    "buffer_accumulates_inputs": lambda x, L: _buffer(x, L),
    "relu_in_place": lambda x, L: _then((x * 2).relu_(), lambda y: (y * x).sum()),
    "zero_then_use": lambda x, L: _then((x * 2).zero_(), lambda y: (y + x).sum()),
    "copy_into_zeros": lambda x, L: _then(L.zeros(4).copy_(x * 2), lambda y: (y * y).sum()),
    "slice_add_of_a_product": lambda x, L: _slice_add(x, L),
    "write_through_a_view": lambda x, L: _view_write(x, L),
    "view_of_a_view": lambda x, L: _nested_view(x, L),
    "reshape_view": lambda x, L: _then(
        x * 1, lambda y: (y.view(2, 2)[0].mul_(5), y)[1].pow(2).sum()
    ),
    "view_made_before_base_changed": lambda x, L: _stale_view(x, L),
    "setitem_mask": lambda x, L: _then(
        x * 1, lambda y: (y.__setitem__(y > 1.5, 0.0), y)[1].pow(3).sum()
    ),
    "setitem_int_array": lambda x, L: _setitem_indices(x, L),
    "masked_fill_in_graph": lambda x, L: _then(x.exp(), lambda y: y.masked_fill(x < 0, 0.0).sum()),
}


def _then(y, loss_of):
    return loss_of(y)


def _buffer(x, L):
    buf = L.zeros(4)
    buf += x * 2
    buf[0] = x[2]
    return (buf * buf).sum()


def _slice_add(x, L):
    u = L.tensor([10.0, 20.0], requires_grad=True)
    y = x * 1
    y[1:3] += u * x[0:2]
    return (y * y).sum() + (u * u).sum()


def _view_write(x, L):
    y = x * 1
    v = y[1:3]
    v.mul_(3)
    return (y * y).sum()


def _nested_view(x, L):
    y = x.reshape(2, 2) * 1
    y[1][0:1].mul_(-2)
    return (y * y).sum()


def _stale_view(x, L):
    y = x * 1
    v = y[0:2]
    y.mul_(2)  # v's values change with y's storage, and so must its gradient path
    return (v * v).sum()


def _setitem_indices(x, L):
    y = x * 1
    y[L.tensor([3, 0])] = x[1:3] * 10
    return (y * y).sum()


@pytest.mark.parametrize("name", GRAPHS)
def test_in_place_inside_a_graph_gives_pytorchs_gradients(name):
    values = np.array([1.0, -2.0, 3.0, 0.5], dtype=np.float32)

    def program(lib):
        x = lib.tensor(values, requires_grad=True)
        loss = GRAPHS[name](x, lib)
        loss.backward()
        return loss, x.grad

    ours, theirs = run_both(program)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-6)


@pytest.mark.parametrize(
    "program",
    [
        lambda L, x: (lambda y: (y.add_(1), y.sum())[1])(x.exp()),  # exp saved its output
        lambda L, x: (lambda y: (y.mul_(2), (y * 1).sum())[1])(x.sigmoid()),
        lambda L, x: (lambda h: (lambda z: (h.add_(1), z.sum())[1])(h * h))(x * 1),  # saved input
        lambda L, x: (lambda y: (lambda z: (y.detach().zero_(), z.sum())[1])(y * y))(x * 1),
    ],
)
def test_overwriting_a_saved_value_raises_pytorchs_error(program):
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(GradError, match="modified by an inplace operation.*version 1; expected"):
        program(sg, x).backward()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        program(torch, torch.tensor([1.0, 2.0], requires_grad=True)).backward()


def test_retain_grad_follows_an_in_place_update():
    def program(lib):
        x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
        y = x * 2
        y.retain_grad()
        y.add_(1)
        (y * y).sum().backward()
        return x.grad, y.grad

    ours, theirs = run_both(program)
    assert ours == theirs


# ---- the rules of dtype, shape and storage --------------------------------------------------
def test_in_place_errors_are_pytorchs():
    with pytest.raises(InPlaceError, match="result type Float can't be cast to the desired"):
        t = sg.tensor([1, 2])
        t /= 2
    with pytest.raises(ShapeError, match=r"output with shape \[2, 1\] doesn't match the broadcast"):
        t = sg.zeros(2, 1)
        t += sg.ones(2, 3)
    with pytest.raises(InPlaceError, match="more than one element of the written-to tensor"):
        t = sg.tensor([1.0, 2.0]).expand(3, 2)
        t += 1
    with pytest.raises(GradError, match="created in no_grad mode"):
        y = sg.tensor([1.0, 2.0], requires_grad=True) * 1
        with sg.no_grad():
            v = y[0:1]
        v.add_(sg.tensor([1.0], requires_grad=True))
    for program in (
        lambda: torch.tensor([1, 2]).div_(2),
        lambda: torch.zeros(2, 1).add_(torch.ones(2, 3)),
        lambda: torch.tensor([1.0, 2.0]).expand(3, 2).add_(1),
    ):
        with pytest.raises(RuntimeError):
            program()


def test_integer_tensors_take_integer_updates_and_float_tensors_take_doubles():
    def program(lib):
        i, f = lib.tensor([1, 2]), lib.tensor([1.5, 2.5])
        i += 3
        i *= 2
        f += lib.tensor([1.0, 1.0], dtype=lib.float64)
        return i, f, str(i.dtype).split(".")[-1], str(f.dtype).split(".")[-1]

    ours, theirs = run_both(program)
    assert ours == theirs


def test_setitem_forms_match_pytorch():
    def program(lib):
        x = lib.arange(12.0).reshape(3, 4)
        x[0] = 5
        x[1, 1:3] = lib.tensor([-1.0, -2.0])
        x[x > 9] = 0
        x[:, 0] = lib.tensor([7.0, 8.0, 9.0])
        x[[0, 2], [3, 3]] = -7
        x[..., -1] += 100
        return x

    ours, theirs = run_both(program)
    assert ours == theirs

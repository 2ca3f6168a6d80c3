"""The Tensor methods tutorials reach for, against PyTorch: mm, comparisons, gather, masked_fill,
new_* factories, views, norms, formatting, and the shape object."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparkgrad as sg
import sparkgrad.autodiff.functional as F

A = np.array([[1.0, -2.0, 3.0], [0.5, 4.0, -1.5]], dtype=np.float32)
B = np.array([[2.0, 1.0], [-1.0, 0.5], [3.0, -2.0]], dtype=np.float32)


TWO_INPUTS = {
    "mm": lambda L, a, b: L.mm(a, b),
    "mm method": lambda L, a, b: a.mm(b),
    "matmul keywords": lambda L, a, b: L.matmul(input=a, other=b),
    "t": lambda L, a, b: a.t() * 2 + b,
    "view_as": lambda L, a, b: a.view_as(b) * b,
    "reshape_as": lambda L, a, b: a.reshape_as(b) - b,
}
ONE_INPUT = {
    "expand_as": lambda L, a: a[:, :1].expand_as(a) * a,
    "masked_fill": lambda L, a: a.masked_fill(a > 0.7, -1.0) * a,
    "gather": lambda L, a: a.gather(1, L.tensor([[2, 0], [1, 1]])),
    "gather dim 0": lambda L, a: L.gather(a, 0, L.tensor([[1, 0, 1]])),
    "norm": lambda L, a: a.norm(),
    "norm dim": lambda L, a: a.norm(dim=1),
    "norm p=1": lambda L, a: a.norm(p=1, dim=0, keepdim=True),
    "clone": lambda L, a: a.clone() * 3,
}


@pytest.mark.parametrize("name", TWO_INPUTS)
def test_two_input_methods_match_torch(name, check_op):
    fn = TWO_INPUTS[name]
    check_op(lambda a, b: fn(sg, a, b), lambda a, b: fn(torch, a, b), [A, B])


@pytest.mark.parametrize("name", ONE_INPUT)
def test_one_input_methods_match_torch(name, check_op):
    fn = ONE_INPUT[name]
    check_op(lambda a: fn(sg, a), lambda a: fn(torch, a), [A])


def test_gather_and_masked_fill_pass_gradcheck(check_grad):
    index = sg.tensor([[2, 2], [0, 1]])
    check_grad(lambda a: F.gather(a, 1, index), [A])
    mask = sg.tensor(A > 0)
    check_grad(lambda a: F.masked_fill(a, mask, 0.5), [A])


@pytest.mark.parametrize("op", ["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparison_methods_and_functions(op):
    a, b = sg.tensor(A), sg.tensor(A[::-1].copy())
    ta, tb = torch.tensor(A), torch.tensor(A[::-1].copy())
    for ours, theirs in (
        (getattr(a, op)(b), getattr(ta, op)(tb)),
        (getattr(sg, op)(a, 0.5), getattr(torch, op)(ta, 0.5)),
    ):
        assert ours.dtype == np.bool_ and ours.tolist() == theirs.tolist()


def test_truth_tests_and_closeness():
    a = sg.tensor(A)
    assert sg.equal(a, a.clone()) and not sg.equal(a, a[:1])
    assert sg.allclose(a, a + 1e-7) and not sg.allclose(a, a + 1e-3)
    assert sg.isclose(a, a + 1e-3, atol=1e-2).all().item()
    assert (a > 0).any().item() and not (a > 10).any().item()
    assert (a > 0).all(dim=1).tolist() == torch.tensor(A > 0).all(dim=1).tolist()


def test_new_factories_keep_dtype_and_device():
    a = sg.tensor([[1, 2]], dtype=sg.float64)
    for out, shape in (
        (a.new_zeros(3), (3,)),
        (a.new_ones((2, 2)), (2, 2)),
        (a.new_full((2,), 7.0), (2,)),
        (a.new_empty(4), (4,)),
        (a.new_tensor([1, 2, 3]), (3,)),
    ):
        assert out.dtype == np.float64 and out.shape == shape and out.device == "cpu"
    assert a.new_full((2,), 7.0).tolist() == [7.0, 7.0]
    assert a.new_zeros(2, dtype=sg.int64).dtype == np.int64


def test_shape_is_a_size_and_size_takes_a_dim():
    t, tt = sg.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    assert t.shape == tt.shape == (2, 3, 4) and isinstance(t.shape, tuple)
    assert t.shape.numel() == tt.shape.numel() == 24
    assert t.size(1) == tt.size(1) == 3 and t.size(-1) == 4 and t.size() == (2, 3, 4)
    assert t.numel() == t.nelement() == 24 and t.dim() == 3
    assert str(t.shape) == "(2, 3, 4)"


def test_python_protocols_as_torch():
    loss, tloss = sg.tensor(0.123456), torch.tensor(0.123456)
    assert f"{loss:.4f}" == f"{tloss:.4f}" == "0.1235"
    assert f"{loss}" == f"{loss.item()}"
    with pytest.raises(TypeError, match="unsupported format string"):
        f"{sg.tensor([1.0, 2.0]):.2f}"
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(loss)
    with pytest.raises(RuntimeError, match="Boolean value of Tensor with more than one value"):
        bool(sg.tensor([1.0, 2.0]))
    assert [1, 2, 3][sg.tensor(1)] == 2  # __index__
    rows = list(sg.tensor(A))
    assert len(rows) == 2 and rows[1].tolist() == A[1].tolist()


def test_max_with_dim_unpacks_as_in_the_cifar_tutorial():
    outputs = sg.tensor(A)
    _, predicted = sg.max(outputs, 1)
    assert predicted.tolist() == torch.max(torch.tensor(A), 1)[1].tolist()
    assert (predicted == sg.tensor([2, 1])).sum().item() == 2


@pytest.mark.parametrize(
    "form",
    [
        lambda L, t: t.to(L.float64),
        lambda L, t: t.to("cpu"),
        lambda L, t: t.to(L.device("cpu"), L.float64),
        lambda L, t: t.to(device="cpu", dtype=L.float16),
        lambda L, t: t.to(L.zeros(1, dtype=L.float64)),
        lambda L, t: t.to(L.float32, copy=True),
        lambda L, t: t.to(L.int64),
    ],
)
def test_tensor_to_accepts_every_torch_form(form):
    """Same dtype and values as torch; ``to`` returns ``self`` exactly when torch does."""
    x, tx = sg.tensor(A), torch.tensor(A)
    ours, theirs = form(sg, x), form(torch, tx)
    assert str(ours.dtype) == str(theirs.dtype).replace("torch.", "")
    assert ours.tolist() == theirs.tolist()
    assert (ours is x) == (theirs is tx)


def test_to_is_differentiable_and_grads_take_the_outputs_dtype():
    x = sg.tensor(A, requires_grad=True)
    y = x.to(sg.float64) * 2
    y.backward(sg.ones(2, 3))  # a float32 gradient for a float64 output: cast, as torch
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [[2.0] * 3] * 2


def test_math_methods_are_attached_like_torchs():
    x, tx = sg.tensor(A), torch.tensor(A)
    for name in ("sin", "cos", "tanh", "floor", "ceil", "sign", "square", "log1p", "expm1"):
        if name in ("log1p",):
            ours, theirs = getattr(x.abs(), name)(), getattr(tx.abs(), name)()
        else:
            ours, theirs = getattr(x, name)(), getattr(tx, name)()
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, err_msg=name)
    assert x.tril().tolist() == tx.tril().tolist() and x.is_floating_point()
    y = x.clone()
    y.floor_()
    assert y.tolist() == tx.floor().tolist()


def test_default_dtype_reaches_the_tensor_constructor():
    sg.set_default_dtype(sg.float64)
    try:
        assert sg.Tensor([1.5]).dtype == np.float64 and sg.tensor([1.5]).dtype == np.float64
    finally:
        sg.set_default_dtype(sg.float32)
    assert sg.Tensor([1.5]).dtype == np.float32

"""What a tensor is: how it is made, its dtype rules, and how to get values out.

PyTorch's dtype rules are the spec, checked against torch itself: Python floats give
float32 (not NumPy's float64), Python ints give int64, an existing array keeps its dtype.
Random factories draw from one seeded generator, so ``manual_seed`` makes runs repeat.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparkgrad as sg

DTYPES = {
    torch.float32: np.float32,
    torch.float64: np.float64,
    torch.int64: np.int64,
    torch.bool: np.bool_,
    torch.int32: np.int32,
}


def _same_dtype(sg_t, torch_t):
    assert sg_t.dtype == np.dtype(DTYPES[torch_t.dtype]), f"{sg_t.dtype} vs {torch_t.dtype}"


@pytest.mark.parametrize(
    "data",
    [
        1.5,
        3,
        True,
        [1.0, 2.0],
        [1, 2],
        [1, 2.5],
        [[1, 2], [3, 4]],
        [True, False],
        np.array([1.0, 2.0]),
        np.array([1, 2], dtype=np.int32),
        np.float32(2.0),
    ],
)
def test_tensor_from_data_follows_torch_dtype_rules(data, device):
    """Values and dtype equal ``torch.tensor(data)``: floats->float32, ints->int64."""
    got, want = sg.tensor(data, device=device), torch.tensor(data)
    _same_dtype(got, want)
    np.testing.assert_array_equal(got.to("cpu").numpy(), want.numpy())


def test_tensor_copies_its_input():
    """``sg.tensor(array)`` copies, like ``torch.tensor``: later edits don't leak in."""
    arr = np.array([1.0, 2.0], dtype=np.float32)
    t = sg.tensor(arr)
    arr[0] = 9.0
    assert t.numpy()[0] == 1.0


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.zeros(2, 3),
        lambda m: m.ones((2, 3)),
        lambda m: m.zeros(4, dtype=m.float64),
        lambda m: m.full((2,), 7),
        lambda m: m.full((2, 2), 0.5),
        lambda m: m.full((3,), True),
        lambda m: m.arange(5),
        lambda m: m.arange(2, 10, 3),
        lambda m: m.arange(0, 1, 0.25),
        lambda m: m.arange(5.0),
        lambda m: m.zeros_like(m.ones(2, dtype=m.int64)),
        lambda m: m.ones_like(m.zeros(3, dtype=m.float64)),
    ],
)
def test_factories_match_torch(make, device):
    """Shapes, values and default dtypes of zeros/ones/full/arange/*_like equal torch's."""
    got, want = make(sg), make(torch)
    if device == "cuda":
        got = got.to("cuda").to("cpu")
    _same_dtype(got, want)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_factories_place_the_tensor_on_the_device(device):
    """``device=`` puts the array on that device."""
    for t in (
        sg.zeros(2, device=device),
        sg.randn(2, device=device),
        sg.arange(3, device=device),
        sg.full((2,), 1.0, device=device),
        sg.tensor([1.0], device=device),
    ):
        assert t.device == device


def test_random_factories_dtypes_and_ranges():
    """randn/rand are float32, rand in [0, 1); randint is int64 in [low, high)."""
    sg.manual_seed(0)
    r, n, i = sg.rand(1000), sg.randn(1000), sg.randint(3, 7, (1000,))
    assert r.dtype == np.float32 and n.dtype == np.float32 and i.dtype == np.int64
    assert 0 <= r.numpy().min() and r.numpy().max() < 1
    assert set(np.unique(i.numpy())) == {3, 4, 5, 6}
    assert abs(n.numpy().mean()) < 0.15 and abs(n.numpy().std() - 1) < 0.1  # ~3-4 sigma


def test_manual_seed_makes_draws_repeat(device):
    """Same seed -> same numbers (on every device); the generator advances between draws."""
    sg.manual_seed(42)
    a, b = sg.randn(3, 4, device=device), sg.rand(5, device=device)
    sg.manual_seed(42)
    a2, b2 = sg.randn(3, 4, device=device), sg.rand(5, device=device)
    np.testing.assert_array_equal(a.to("cpu").numpy(), a2.to("cpu").numpy())
    np.testing.assert_array_equal(b.to("cpu").numpy(), b2.to("cpu").numpy())
    assert not np.array_equal(a.to("cpu").numpy()[0, :3], a2.to("cpu").numpy()[1, :3])
    sg.manual_seed(43)
    assert not np.array_equal(sg.randn(3, 4).numpy(), a.to("cpu").numpy())


def test_rng_state_round_trip():
    """``get_rng_state``/``set_rng_state`` replay the same draws (used by checkpoints)."""
    sg.manual_seed(7)
    state = sg.get_rng_state()
    first = sg.randn(4).numpy()
    sg.set_rng_state(state)
    np.testing.assert_array_equal(sg.randn(4).numpy(), first)


def test_to_dtype_and_shorthands(device):
    """``.to(dtype)``, ``.double()``, ``.float()``, ``.long()`` convert as torch does."""
    x = sg.tensor([1.7, -2.5], device=device)
    t = torch.tensor([1.7, -2.5])
    for got, want in (
        (x.to(sg.float64), t.to(torch.float64)),
        (x.double(), t.double()),
        (x.double().float(), t.double().float()),
        (x.long(), t.long()),
        (x.to("cpu", np.float64), t.to("cpu", torch.float64)),
    ):
        _same_dtype(got, want)
        np.testing.assert_array_equal(got.to("cpu").numpy(), want.numpy())
    assert x.to(np.float32) is x  # no conversion needed: the same tensor, as torch


def test_item_numpy_and_python_conversions():
    """``item()`` gives a Python number of the matching kind; ``numpy()`` an ndarray."""
    f, i = sg.tensor([[2.5]]), sg.tensor(3)
    assert isinstance(f.item(), float) and f.item() == 2.5
    assert isinstance(i.item(), int) and i.item() == 3
    assert float(f) == 2.5 and int(i) == 3 and bool(sg.tensor(1.0))
    arr = sg.tensor([[1.0, 2.0]]).numpy()
    assert isinstance(arr, np.ndarray) and arr.shape == (1, 2) and arr.dtype == np.float32
    assert sg.tensor([[1, 2]]).tolist() == [[1, 2]]
    assert np.asarray(sg.tensor([1.0, 2.0])).tolist() == [1.0, 2.0]


def test_shape_attributes_match_torch():
    """shape, ndim, size(), dim(), numel(), len() and .T as torch (shape is a plain tuple)."""
    x_np = np.arange(6, dtype=np.float32).reshape(2, 3)
    x, t = sg.tensor(x_np), torch.tensor(x_np)
    assert x.shape == tuple(t.shape) and isinstance(x.shape, tuple)
    assert (x.ndim, x.dim(), x.numel(), len(x)) == (t.ndim, t.dim(), t.numel(), len(t))
    assert x.size() == tuple(t.size()) and x.size(1) == t.size(1)
    np.testing.assert_array_equal(x.T.numpy(), t.T.numpy())
    assert sg.tensor(1.0).shape == () and sg.tensor(1.0).ndim == 0


def test_comparisons_give_boolean_tensors():
    """``<``, ``==`` ... compare element-wise and never record a graph."""
    x = sg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    mask = x > 1.5
    assert mask.dtype == np.bool_ and not mask.requires_grad
    assert mask.tolist() == [False, True, True]
    assert (x == sg.tensor([1.0, 0.0, 3.0])).tolist() == [True, False, True]


def test_repr_shows_values_and_autograd_state():
    """repr reads like torch's: values, then non-default dtype, grad_fn or requires_grad."""
    assert repr(sg.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "requires_grad=True" in repr(sg.tensor([1.0], requires_grad=True))
    assert "dtype=float64" in repr(sg.tensor([1.0], dtype=np.float64))
    y = sg.tensor([1.0], requires_grad=True) * 2
    assert "grad_fn=<MulBackward>" in repr(y)
    assert repr(sg.tensor([1, 2])) == "tensor([1, 2])"


def test_is_leaf_and_grad_fn():
    """Tensors you create are leaves; op results that need grad record their op."""
    x = sg.tensor([1.0], requires_grad=True)
    y = x * 2
    assert x.is_leaf and x.grad_fn is None
    assert not y.is_leaf and y.grad_fn.name() == "MulBackward"
    with sg.no_grad():
        assert (x * 2).is_leaf

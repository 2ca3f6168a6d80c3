"""Walkthrough 2.2 — the dense (fully connected) layer, ``sg.nn.DenseLayer`` (``sg.nn.Linear``).

A dense layer maps ``in_features`` numbers to ``out_features`` numbers::

    y = x @ Wᵀ + b        x: (N, in)     W: (out, in)     b: (out,)     y: (N, out)

It is walkthroughs 1.2 and 1.3 put together: a matrix product plus a broadcast bias. So the
gradients are already known::

    dL/dx = g @ W          dL/dW = gᵀ @ x          dL/db = Σ over the batch of g

Why is ``W`` stored as (out, in) and not (in, out)? Because PyTorch stores it that way:
row ``o`` of ``W`` holds the weights of output unit ``o``. Keeping the same layout (and
the same names ``weight``/``bias``) means a PyTorch ``state_dict`` loads into sparkgrad
unchanged and back.

Initial values matter for training: PyTorch draws both ``W`` and ``b`` from the uniform
distribution U(-1/√in, 1/√in), which keeps the output's scale roughly independent of the
layer's width. sparkgrad draws from the same distribution with its own seeded generator:
the *distribution* is PyTorch's, the *numbers* are not — to compare runs number for
number we copy PyTorch's weights in, as the tests below do.
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

import sparkgrad as sg
from sparkgrad.errors import ShapeError


def test_dense_layer_is_linear_with_pytorch_shapes():
    """``DenseLayer`` and ``Linear`` are one class; weight is (out, in), bias is (out,)."""
    assert sg.nn.DenseLayer is sg.nn.Linear
    layer = sg.nn.Linear(3, 5)
    assert layer.weight.shape == (5, 3) and layer.bias.shape == (5,)
    assert layer.weight.dtype == np.float32
    assert layer.weight.requires_grad and layer.weight.is_leaf
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert list(layer.state_dict()) == list(torch.nn.Linear(3, 5).state_dict())
    assert repr(layer) == repr(torch.nn.Linear(3, 5))  # "Linear(in_features=3, ...)"
    assert sg.nn.Linear(3, 5, bias=False).bias is None


def test_forward_is_x_times_w_transposed_plus_b():
    """The layer computes exactly x @ Wᵀ + b (checked with plain NumPy in float64)."""
    sg.manual_seed(0)
    layer = sg.nn.Linear(4, 2).double()
    x = np.random.default_rng(0).standard_normal((3, 4))
    w, b = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    np.testing.assert_allclose(layer(sg.tensor(x, dtype=sg.float64)).detach().numpy(), x @ w.T + b)


def test_init_follows_pytorch_distribution():
    """Weight and bias are uniform on [-1/√in, 1/√in], like ``torch.nn.Linear``.

    With 256·784 ≈ 200k weights the sample is large enough for a Kolmogorov-Smirnov
    test: the empirical distribution is compared with U(-bound, bound) and with a
    PyTorch layer's weights. The seeds are fixed, so the test is deterministic.
    """
    sg.manual_seed(0)
    torch.manual_seed(0)
    layer, tlayer = sg.nn.Linear(784, 256), torch.nn.Linear(784, 256)
    bound = 1 / math.sqrt(784)
    w = layer.weight.detach().numpy().ravel()
    tw = tlayer.weight.detach().numpy().ravel()
    b = layer.bias.detach().numpy()

    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.99 * bound  # the whole interval is used, not a narrower one
    assert stats.kstest(w, "uniform", args=(-bound, 2 * bound)).pvalue > 1e-3
    assert stats.ks_2samp(w, tw).pvalue > 1e-3  # indistinguishable from PyTorch's weights
    assert stats.kstest(b, "uniform", args=(-bound, 2 * bound)).pvalue > 1e-3
    # the test has teeth: a normal with the very same variance (bound²/3) is rejected
    normal = np.random.default_rng(0).normal(0, bound / math.sqrt(3), w.size)
    assert stats.kstest(normal, "uniform", args=(-bound, 2 * bound)).pvalue < 1e-3


def test_init_is_reproducible_from_the_seed():
    """The same seed gives the same weights; another seed gives others."""
    sg.manual_seed(7)
    first = sg.nn.Linear(5, 4).weight.detach().numpy()
    sg.manual_seed(7)
    again = sg.nn.Linear(5, 4).weight.detach().numpy()
    sg.manual_seed(8)
    other = sg.nn.Linear(5, 4).weight.detach().numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def _copied_pair(n_in: int, n_out: int, dtype: torch.dtype) -> tuple:
    """A torch layer and a sparkgrad layer holding the very same weights."""
    torch.manual_seed(1)
    tlayer = torch.nn.Linear(n_in, n_out).to(dtype)
    layer = sg.nn.Linear(n_in, n_out)
    if dtype == torch.float64:
        layer = layer.double()
    layer.load_state_dict(tlayer.state_dict())  # torch tensors are accepted as they are
    return layer, tlayer


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_forward_and_backward_match_torch(dtype: torch.dtype):
    """Same weights, same input, same upstream gradient: same y, dL/dx, dL/dW, dL/db."""
    layer, tlayer = _copied_pair(20, 7, dtype)
    rng = np.random.default_rng(2)
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    xv = rng.standard_normal((16, 20)).astype(np_dtype)
    gv = rng.standard_normal((16, 7)).astype(np_dtype)
    x = sg.tensor(xv, requires_grad=True)
    tx = torch.tensor(xv, requires_grad=True)

    y, ty = layer(x), tlayer(tx)
    y.backward(sg.tensor(gv))
    ty.backward(torch.tensor(gv))

    tol = {"rtol": 1e-12, "atol": 1e-13} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), **tol)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.weight.grad.numpy(), tlayer.weight.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.bias.grad.numpy(), tlayer.bias.grad.numpy(), **tol)


def test_gradients_are_the_formulas_above():
    """dL/dx = g W, dL/dW = gᵀ x, dL/db = Σ_batch g, computed in NumPy from the copied values."""
    layer, _ = _copied_pair(6, 3, torch.float64)
    rng = np.random.default_rng(3)
    xv, gv = rng.standard_normal((5, 6)), rng.standard_normal((5, 3))
    x = sg.tensor(xv, dtype=sg.float64, requires_grad=True)
    layer(x).backward(sg.tensor(gv, dtype=sg.float64))
    w = layer.weight.detach().numpy()
    np.testing.assert_allclose(x.grad.numpy(), gv @ w, rtol=1e-13)
    np.testing.assert_allclose(layer.weight.grad.numpy(), gv.T @ xv, rtol=1e-13)
    np.testing.assert_allclose(layer.bias.grad.numpy(), gv.sum(axis=0), rtol=1e-13)


def test_extra_leading_axes_are_a_bigger_batch():
    """Input (2, 3, in) behaves like (6, in): weights are shared by every leading position."""
    layer, tlayer = _copied_pair(4, 2, torch.float64)
    xv = np.random.default_rng(4).standard_normal((2, 3, 4))
    x = sg.tensor(xv, dtype=sg.float64, requires_grad=True)
    tx = torch.tensor(xv, requires_grad=True)
    (layer(x) ** 2).sum().backward()
    (tlayer(tx) ** 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.weight.grad.numpy(), tlayer.weight.grad.numpy(), rtol=1e-12)


def test_gradcheck_through_the_layer():
    """Finite differences agree for the input and both parameters (float64)."""
    sg.manual_seed(5)
    layer = sg.nn.Linear(3, 2).double()
    x = sg.randn(4, 3, dtype=sg.float64, requires_grad=True)
    assert sg.gradcheck(
        lambda inp, w, b: sg.nn.functional.linear(inp, w, b).tanh(), [x, layer.weight, layer.bias]
    )


def test_wrong_input_width_is_a_shape_error():
    """A (2, 5) input for a layer expecting 3 features: a ShapeError naming both numbers."""
    with pytest.raises(ShapeError, match="5 features.*expects 3"):
        sg.nn.Linear(3, 2)(sg.ones(2, 5))

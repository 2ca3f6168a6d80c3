"""Type promotion: which dtype an op returns, and which dtype a gradient has.

NumPy and PyTorch disagree here, and PyTorch is the spec: in NumPy 2 ``int64 * 0.5`` and
``float32 * np.float64(2)`` give float64, in PyTorch they give float32. A silent float64
doubles memory and halves speed, and breaks the "same numbers as PyTorch" promise, so
every case is checked against torch itself. A gradient always has its tensor's dtype.
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
}

CASES = {
    "f32 * np.float64 scalar": lambda m, x, i, d: x * np.float64(2),
    "np.float64 scalar * f32": lambda m, x, i, d: np.float64(2) * x,
    "np.float32 scalar - f32": lambda m, x, i, d: np.float32(2) - x,
    "f32 ** np.float64 scalar": lambda m, x, i, d: x ** np.float64(2),
    "f32 + f64": lambda m, x, i, d: x + d,
    "int * python float": lambda m, x, i, d: i * 0.5,
    "int / python int": lambda m, x, i, d: i / 2,
    "int / int": lambda m, x, i, d: i / i,
    "python int / int": lambda m, x, i, d: 1 / i,
    "int + f32": lambda m, x, i, d: i + x,
    "f32 - int": lambda m, x, i, d: x - i,
    "int + f64": lambda m, x, i, d: i + d,
    "int + python int": lambda m, x, i, d: i + 1,
    "int * int": lambda m, x, i, d: i * i,
    "python float ** int": lambda m, x, i, d: 2.0**i,
    "int ** python int": lambda m, x, i, d: i**2,
    "bool + python int": lambda m, x, i, d: (x > 1) + 1,
    "bool * python float": lambda m, x, i, d: (x > 1) * 1.5,
    "maximum(int, f32)": lambda m, x, i, d: m.maximum(i, x),
    "exp(int)": lambda m, x, i, d: m.exp(i),
    "log(int)": lambda m, x, i, d: m.log(i),
    "sqrt(int)": lambda m, x, i, d: m.sqrt(i),
    "tanh(int)": lambda m, x, i, d: m.tanh(i),
    "sigmoid(int)": lambda m, x, i, d: m.sigmoid(i),
    "sum(int)": lambda m, x, i, d: i.sum(),
    "sum(bool)": lambda m, x, i, d: (x > 1).sum(),
    "abs(int)": lambda m, x, i, d: i.abs(),
    "-int": lambda m, x, i, d: -i,
}


@pytest.mark.parametrize("name", CASES)
def test_result_dtype_and_values_match_torch(name, device):
    """The result has torch's dtype and torch's values."""
    got = CASES[name](sg, *(sg.tensor(v, device=device) for v in _inputs()))
    want = CASES[name](torch, *(torch.tensor(v) for v in _inputs()))
    assert got.dtype == np.dtype(DTYPES[want.dtype]), f"{name}: {got.dtype} vs {want.dtype}"
    np.testing.assert_allclose(got.to("cpu").numpy(), want.numpy(), rtol=1e-6)


def _inputs():
    return (
        np.array([1.0, 2.0, 3.0], np.float32),
        np.array([1, 2, 3], np.int64),
        np.array([0.5, 1.0, 1.5], np.float64),
    )


def test_gradient_has_the_dtype_of_its_tensor():
    """float32 leaf times float64 leaf: the product is float64, each grad keeps its dtype."""
    a = sg.tensor([1.0, 2.0], requires_grad=True)
    b = sg.tensor([3.0, 4.0], dtype=np.float64, requires_grad=True)
    ta = torch.tensor([1.0, 2.0], requires_grad=True)
    tb = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    (a * b).sum().backward()
    (ta * tb).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    assert ta.grad.dtype == torch.float32 and tb.grad.dtype == torch.float64
    np.testing.assert_array_equal(a.grad.numpy(), ta.grad.numpy())
    np.testing.assert_array_equal(b.grad.numpy(), tb.grad.numpy())


def test_numpy_scalar_keeps_the_graph_in_float32():
    """``x * np.sqrt(2)`` (a NumPy float64 scalar) is float32 all the way, grad included."""
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    y = x * np.sqrt(np.float64(2)) / np.float64(4)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), [np.sqrt(2) / 4] * 2, rtol=1e-6)

"""``axpy`` rounded as PyTorch rounds it, at every length and thread count.

The optimizers' ``y + alpha * x`` must round once (a fused multiply-add) at every length:
BLAS kernels finish a block's leftover elements with scalar code, which is where a double
rounding would hide, and long vectors go to BLAS in slices, whose ends are more such
places. The result must not depend on the number of BLAS threads either: checked bit for
bit against one thread, and against ``torch.optim`` itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad.autodiff import threads
from sparkgrad.autodiff.optim.fused import axpy
from sparkgrad.errors import ConfigError

BIG = 100_003  # ten BLAS slices and an odd tail


@pytest.fixture
def num_threads():
    """Set the thread count for one test; restore it (and BLAS's limit) afterwards."""
    before = threads.get_num_threads()
    yield threads.set_num_threads
    threads.set_num_threads(before)


@pytest.mark.parametrize("n", [*range(1, 130), 9983, 9984, 9985, 10_001, 70_017])
def test_axpy_rounds_once_like_torch_at_every_length(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    for alpha in (-0.1, 0.9, 1e-3):
        ours = np.empty(n + 1, np.float32)[1:]  # a view that starts off SIMD alignment
        ours[...] = y
        axpy(alpha, x, ours, None)
        theirs = torch.from_numpy(y.copy()).add_(torch.from_numpy(x), alpha=alpha).numpy()
        np.testing.assert_array_equal(ours, theirs, err_msg=f"n={n} alpha={alpha}")


def test_set_num_threads_limits_numpys_blas_and_refuses_nonsense(num_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    num_threads(1)
    assert sg.get_num_threads() == 1
    pools = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert pools and all(i["num_threads"] == 1 for i in pools)
    with pytest.raises(ConfigError, match="positive int, found 0"):
        sg.set_num_threads(0)


OPTIMIZERS = [
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.01, weight_decay=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("Adadelta", dict(weight_decay=0.01)),
    ("RMSprop", dict(centered=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, maximize=True)),
]


def _trajectory(name, kw, steps=5):
    """``steps`` updates of one big and one small parameter; returns the final weights."""
    rng = np.random.default_rng(0)
    params = [sg.tensor(rng.standard_normal(s).astype(np.float32)) for s in ((BIG,), (7, 3))]
    opt = getattr(sg.optim, name)(params, **kw)
    for _ in range(steps):
        for p in params:
            p.grad = sg.tensor(rng.standard_normal(p.shape).astype(np.float32))
        opt.step()
    return [p.numpy().copy() for p in params]


@pytest.mark.parametrize("name,kw", OPTIMIZERS, ids=lambda v: str(v))
def test_threaded_update_is_bit_identical_to_one_thread_and_to_torch(name, kw, num_threads):
    """The step of a 100,003-weight parameter: the same bits on 1 and 3 threads."""
    num_threads(1)
    single = _trajectory(name, kw)
    num_threads(3)
    split = _trajectory(name, kw)
    for a, b in zip(single, split):
        np.testing.assert_array_equal(a, b)

    rng = np.random.default_rng(0)
    inits = [rng.standard_normal(s).astype(np.float32) for s in ((BIG,), (7, 3))]
    params = [torch.tensor(a, requires_grad=True) for a in inits]
    opt = getattr(torch.optim, name)(params, foreach=False, **kw)
    for _ in range(5):
        for p in params:
            p.grad = torch.from_numpy(rng.standard_normal(tuple(p.shape)).astype(np.float32))
        opt.step()
    tol = dict(rtol=0, atol=0) if name == "SGD" else dict(rtol=1e-6, atol=1e-7)
    for ours, theirs in zip(split, params):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), **tol)


@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 63, 64, 65, 129, 8191, 8192, 8193, 20_001])
def test_addcmul_rounds_like_torchs_fused_kernel(n):
    """``y.addcmul_(x1, x2, value=v)`` is ``fma(v * x1, x2, y)`` in torch: the same bits here."""
    from sparkgrad.autodiff.optim.fused import addcmul

    rng = np.random.default_rng(n)
    x1, x2, y = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    for value in (1.0, -1.0, 0.01, 0.7):
        ours = np.empty(n + 1, np.float32)[1:]  # off SIMD alignment
        ours[...] = y
        addcmul(ours, x1, x2, value, np.empty_like(ours))
        theirs = torch.from_numpy(y.copy())
        theirs.addcmul_(torch.from_numpy(x1), torch.from_numpy(x2), value=value)
        np.testing.assert_array_equal(ours, theirs.numpy(), err_msg=f"n={n} value={value}")


def test_addcmul_on_0dim_transposed_and_mixed_layouts():
    """0-d arrays stay 0-d and change in place; F-ordered arrays take the exact path too;
    mixed layouts fall back to two rounded ops (within an ulp of torch)."""
    from sparkgrad.autodiff.optim.fused import addcmul

    rng = np.random.default_rng(0)
    y0 = np.array(1.5, np.float32)
    addcmul(y0, np.array(0.3, np.float32), np.array(-2.0, np.float32), 0.5, np.empty_like(y0))
    assert y0.shape == () and y0 == np.float32(1.5) + np.float32(0.15) * np.float32(-2.0)

    x1, x2, y = (rng.standard_normal((40, 30)).astype(np.float32) for _ in range(3))
    expected = torch.from_numpy(y.copy())
    expected.addcmul_(torch.from_numpy(x1), torch.from_numpy(x2), value=0.1)
    yt = np.asfortranarray(y)
    addcmul(yt, np.asfortranarray(x1), np.asfortranarray(x2), 0.1, np.empty_like(yt))
    np.testing.assert_array_equal(yt, expected.numpy())
    mixed = y.copy()
    addcmul(mixed, np.asfortranarray(x1), x2, 0.1, np.empty_like(mixed))
    np.testing.assert_allclose(mixed, expected.numpy(), rtol=2.4e-7, atol=1e-7)


@pytest.mark.parametrize("weight", [0.0, 0.1, 0.4999, 0.5, 0.9, 1.0])
def test_lerp_is_torchs_at_both_branches(weight):
    """``start.lerp_(end, w)``: torch switches form at w = 0.5; w = 1 lands on ``end``."""
    from sparkgrad.autodiff.optim.fused import lerp

    rng = np.random.default_rng(1)
    start, end = (rng.standard_normal(1000).astype(np.float32) for _ in range(2))
    ours = start.copy()
    lerp(ours, end, weight, np.empty_like(ours))
    theirs = torch.from_numpy(start.copy()).lerp_(torch.from_numpy(end), weight).numpy()
    np.testing.assert_array_equal(ours, theirs)
    if weight == 1.0:
        np.testing.assert_array_equal(ours, end)

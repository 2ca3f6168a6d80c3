"""Optimizers: 20 steps of sparkgrad's SGD/Adam/AdamW against ``torch.optim``.

An update rule is easy to get *almost* right (dampening on the first step, the order of the
bias corrections, weight decay before or after the moments...), and "almost" only shows
after a few steps. So every test runs a trajectory: the gradient at each step depends on
the current weights, so an early mistake changes every later gradient and compounds.

Two kinds of gradient:

- the same NumPy function of the current weights on both sides: only the optimizers
  differ, so float32 must agree to ~1e-6 (SGD even bit for bit: both round each
  ``y + alpha * x`` once, see ``sparkgrad.autodiff.optim.fused``);
- a small MLP's cross-entropy, differentiated by sparkgrad's autograd on one side and
  torch's on the other, in float64 (to ~1e-12).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sparkgrad as sg
import sparkgrad.autodiff.functional as F


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The reference runs are tiny: one torch thread saves thread start-up and contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# (optimizer name, keyword arguments): every option of every optimizer at least once
CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.5)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, weight_decay=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.5, weight_decay=0.1, maximize=True)),
    ("SGD", dict(lr=0.1, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.6), eps=1e-3)),  # lerp's other branch: 1-beta1 >= .5
    ("Adam", dict(lr=0.01, maximize=True, weight_decay=0.05)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True)),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw in CONFIGS]
SHAPES = [(6, 5), (5,), (3,)]


def _problem(dtype, seed=0):
    """Initial weights, and a gradient field g(p) = c (p - t) + sin(p) / 4 for each weight."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    curv = [rng.uniform(0.5, 2.0, s).astype(dtype) for s in SHAPES]
    target = [rng.standard_normal(s).astype(dtype) for s in SHAPES]

    def grad(i, p):
        return curv[i] * (p - target[i]) + np.sin(p) / 4

    return init, grad


def run_both(name, kw, dtype, device="cpu", steps=20, seed=0):
    """The same trajectory with sparkgrad and torch; returns both final weight lists.

    With ``maximize`` the gradient field is negated (we climb -f), so that both runs
    still converge instead of racing apart, where any rounding difference would grow.
    """
    init, field = _problem(dtype, seed)
    sign = -1 if kw.get("maximize") else 1

    def grad(i, p):
        return sign * field(i, p)

    ours = [sg.tensor(a, device=device, requires_grad=True) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    opt = getattr(sg.optim, name)(ours, **kw)
    ref = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    for _ in range(steps):
        for i, (p, t) in enumerate(zip(ours, theirs)):
            p.grad = sg.tensor(grad(i, p.detach().cpu().numpy()), device=device)
            t.grad = torch.from_numpy(grad(i, t.detach().numpy()))
        opt.step()
        ref.step()
    return ours, theirs


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trajectory_matches_torch(name, kw, dtype, device, assert_close):
    ours, theirs = run_both(name, kw, dtype, device)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for i, (p, t) in enumerate(zip(ours, theirs)):
        assert_close(p, t, what=f"weight {i} after 20 steps", **tol)


@pytest.mark.parametrize("name,kw", [c for c in CONFIGS if c[0] == "SGD"])
def test_sgd_is_bit_identical_to_torch_on_cpu(name, kw):
    """SGD is made of ``y + alpha*x`` steps only; rounded once each, it matches exactly."""
    ours, theirs = run_both(name, kw, np.float32)
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(p.detach().numpy(), t.detach().numpy())


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_trajectory_without_blas_matches_torch(name, kw, monkeypatch, assert_close):
    """The fallback of ``axpy`` (two array ops, as on CuPy or without SciPy) rounds twice."""
    monkeypatch.setattr("sparkgrad.autodiff.optim.fused._AXPY", {})
    ours, theirs = run_both(name, kw, np.float32)
    for i, (p, t) in enumerate(zip(ours, theirs)):
        assert_close(p, t, rtol=1e-6, atol=1e-6, what=f"weight {i} after 20 steps")


def test_non_contiguous_parameter_is_updated_in_place(assert_close):
    """A weight that is a transposed view still changes in place, and like torch's."""
    init, grad = _problem(np.float64)
    base = np.ascontiguousarray(init[0].T)  # (5, 6) in memory, used as its (6, 5) transpose
    w = sg.tensor(init[0], requires_grad=True)
    w.array = base.T  # e.g. a weight tied to another layer's transpose
    assert not w.array.flags.c_contiguous and np.shares_memory(w.array, base)
    tw = torch.tensor(init[0], requires_grad=True)
    opt = sg.optim.Adam([w], lr=0.05, weight_decay=0.1)
    ref = torch.optim.Adam([tw], lr=0.05, weight_decay=0.1, foreach=False)
    for _ in range(10):
        w.grad = sg.tensor(grad(0, w.detach().numpy()))
        tw.grad = torch.from_numpy(grad(0, tw.detach().numpy()))
        opt.step()
        ref.step()
    assert np.shares_memory(w.array, base)
    assert_close(w, tw, rtol=1e-12, atol=1e-12)


def _mlp_sg(x, y, w):
    return F.cross_entropy(F.linear(F.tanh(F.linear(x, w[0], w[1])), w[2], w[3]), y)


def _mlp_torch(x, y, w):
    tf = torch.nn.functional
    return tf.cross_entropy(tf.linear(torch.tanh(tf.linear(x, w[0], w[1])), w[2], w[3]), y)


@pytest.mark.parametrize("name,kw", CONFIGS, ids=IDS)
def test_mlp_training_with_each_autograd_matches_torch(name, kw, assert_close):
    """A 3-8-2 MLP trained 20 steps in float64: sparkgrad end to end vs torch end to end."""
    rng = np.random.default_rng(1)
    init = [0.5 * rng.standard_normal(s) for s in [(8, 3), (8,), (2, 8), (2,)]]
    x, y = rng.standard_normal((16, 3)), rng.integers(0, 2, 16)
    ours = [sg.tensor(a, requires_grad=True) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    opt = getattr(sg.optim, name)(ours, **kw)
    ref = getattr(torch.optim, name)(theirs, foreach=False, **kw)
    for _ in range(20):
        opt.zero_grad()
        _mlp_sg(sg.tensor(x), sg.tensor(y), ours).backward()
        opt.step()
        ref.zero_grad()
        _mlp_torch(torch.tensor(x), torch.tensor(y), theirs).backward()
        ref.step()
    for i, (p, t) in enumerate(zip(ours, theirs)):
        assert_close(p, t, rtol=1e-12, atol=1e-12, what=f"MLP weight {i}")


FAST = settings(max_examples=15, deadline=None)


@FAST
@given(
    lr=st.floats(1e-3, 0.5),
    momentum=st.sampled_from([0.0, 0.3, 0.9]),
    dampening=st.floats(0.0, 0.9),
    weight_decay=st.sampled_from([0.0, 1e-3, 0.2]),
    nesterov=st.booleans(),
    maximize=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_sgd_random_hyperparameters(
    lr, momentum, dampening, weight_decay, nesterov, maximize, seed
):
    if nesterov:  # torch's rule: Nesterov needs momentum and no dampening
        momentum, dampening = max(momentum, 0.3), 0.0
    kw = dict(
        lr=lr,
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
        maximize=maximize,
    )
    ours, theirs = run_both("SGD", kw, np.float64, steps=10, seed=seed)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-12, atol=1e-12)


@FAST
@given(
    name=st.sampled_from(["Adam", "AdamW"]),
    lr=st.floats(1e-4, 0.1),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.0, 0.9999),
    eps=st.sampled_from([1e-8, 1e-6, 1e-3]),
    weight_decay=st.sampled_from([0.0, 1e-2, 0.3]),
    amsgrad=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_adam_random_hyperparameters(name, lr, beta1, beta2, eps, weight_decay, amsgrad, seed):
    kw = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
    ours, theirs = run_both(name, kw, np.float64, steps=10, seed=seed)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.detach().numpy(), t.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_param_groups_with_their_own_lr_match_torch(assert_close):
    init, grad = _problem(np.float32)
    ours = [sg.tensor(a, requires_grad=True) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    opt = sg.optim.SGD(
        [{"params": ours[:2]}, {"params": ours[2:], "lr": 0.5}], lr=0.05, momentum=0.9
    )
    ref = torch.optim.SGD(
        [{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.5}],
        lr=0.05,
        momentum=0.9,
        foreach=False,
    )
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.5]
    for _ in range(10):
        for i, (p, t) in enumerate(zip(ours, theirs)):
            p.grad = sg.tensor(grad(i, p.detach().numpy()))
            t.grad = torch.from_numpy(grad(i, t.detach().numpy()))
        opt.step()
        ref.step()
    for p, t in zip(ours, theirs):
        assert_close(p, t, rtol=1e-6, atol=1e-6)

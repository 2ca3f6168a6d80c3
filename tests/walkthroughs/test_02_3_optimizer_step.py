"""Walkthrough 2.3 — one optimizer step: by hand, then with ``sg.optim.SGD`` and ``sg.optim.Adam``.

``backward`` tells each weight which way is uphill (its gradient ``g``). Training moves
it a small step the other way. Plain **gradient descent** with learning rate ``lr``::

    w ← w - lr · g

The update must not be recorded in the graph (it is not part of the model's
computation), so by hand it is written inside ``with sg.no_grad():``. Optimizers do
exactly that for you, for every parameter, and remember whatever they need between steps:

* **SGD with momentum** keeps a running direction ``buf`` so consistent gradients build
  up speed and noisy ones cancel: ``buf ← μ·buf + g`` (``buf = g`` on the first step),
  then ``w ← w - lr·buf``.
* **Adam** keeps running averages of ``g`` (m) and ``g²`` (v), corrects their bias
  towards zero in the first steps, and divides: ``w ← w - lr · m̂ / (√v̂ + ε)``. Each
  weight thus gets its own step size, about ``lr`` in magnitude at the start.

The loop is always the same three lines, as in PyTorch::

    opt.zero_grad()      # forget last step's gradients (.grad accumulates, walkthrough 1.1)
    loss.backward()      # fill .grad
    opt.step()           # move the weights
"""

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad.errors import ConfigError, GradError


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run PyTorch on one thread: these tiny matrices gain nothing from threads, and on a
    busy machine competing threads make each step many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _quadratic_problem():
    """L(w) = Σ (x @ w - y)², a least-squares fit with a known gradient 2·xᵀ(x @ w - y)."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, 3)), rng.standard_normal(8), rng.standard_normal(3)


def _loss(w: sg.Tensor, x: np.ndarray, y: np.ndarray) -> sg.Tensor:
    r = sg.tensor(x, dtype=sg.float64) @ w - sg.tensor(y, dtype=sg.float64)
    return (r * r).sum()


def test_one_gradient_descent_step_by_hand():
    """Compute g, update w ← w - lr·g without recording, and check both against NumPy."""
    x, y, w0 = _quadratic_problem()
    lr = 0.01
    w = sg.tensor(w0, dtype=sg.float64, requires_grad=True)
    loss = _loss(w, x, y)
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * x.T @ (x @ w0 - y), rtol=1e-13)

    with sg.no_grad():
        w -= lr * w.grad  # in place: w stays the same leaf tensor
    assert w.is_leaf and w.grad_fn is None
    np.testing.assert_allclose(w.detach().numpy(), w0 - lr * 2 * x.T @ (x @ w0 - y), rtol=1e-13)
    assert _loss(w, x, y).item() < loss.item()  # a small step downhill lowers the loss


def test_in_place_update_outside_no_grad_is_refused():
    """Changing a leaf that requires grad while recording would corrupt the graph: GradError."""
    w = sg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(GradError, match="no_grad"):
        w.sub_(sg.tensor([0.1, 0.1]))


def test_sgd_equals_the_hand_written_step():
    """``sg.optim.SGD(lr)`` makes exactly the hand-written update, step after step."""
    x, y, w0 = _quadratic_problem()
    lr = 0.01
    w = sg.tensor(w0, dtype=sg.float64, requires_grad=True)
    opt = sg.optim.SGD([w], lr=lr)
    expected = w0.copy()
    for _ in range(3):
        opt.zero_grad()
        _loss(w, x, y).backward()
        opt.step()
        expected = expected - lr * 2 * x.T @ (x @ expected - y)
        np.testing.assert_allclose(w.detach().numpy(), expected, rtol=1e-13)


def test_momentum_by_hand():
    """buf = g on step 1, then buf ← μ·buf + g; w ← w - lr·buf (three steps in NumPy)."""
    x, y, w0 = _quadratic_problem()
    lr, mu = 0.01, 0.9
    w = sg.tensor(w0, dtype=sg.float64, requires_grad=True)
    opt = sg.optim.SGD([w], lr=lr, momentum=mu)
    expected, buf = w0.copy(), None
    for _ in range(3):
        opt.zero_grad()
        _loss(w, x, y).backward()
        opt.step()
        g = 2 * x.T @ (x @ expected - y)
        buf = g if buf is None else mu * buf + g
        expected = expected - lr * buf
        np.testing.assert_allclose(w.detach().numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(opt.state[w]["momentum_buffer"].numpy(), buf, rtol=1e-12)


def test_adam_by_hand():
    """Adam from the paper's formulas (bias-corrected m̂, v̂), three steps in NumPy float64."""
    x, y, w0 = _quadratic_problem()
    lr, b1, b2, eps = 0.1, 0.9, 0.999, 1e-8
    w = sg.tensor(w0, dtype=sg.float64, requires_grad=True)
    opt = sg.optim.Adam([w], lr=lr, betas=(b1, b2), eps=eps)
    expected, m, v = w0.copy(), np.zeros(3), np.zeros(3)
    for t in range(1, 4):
        opt.zero_grad()
        _loss(w, x, y).backward()
        opt.step()
        g = 2 * x.T @ (x @ expected - y)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        expected = expected - lr * m_hat / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(w.detach().numpy(), expected, rtol=1e-12)


def test_adam_first_step_moves_each_weight_by_about_lr():
    """On step 1, m̂ = g and √v̂ = |g|, so every weight moves by lr·sign(g), whatever |g| is."""
    w = sg.tensor([1.0, 1.0, 1.0], dtype=sg.float64, requires_grad=True)
    opt = sg.optim.Adam([w], lr=0.05)
    (w * sg.tensor([1000.0, -0.01, 3.0], dtype=sg.float64)).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.detach().numpy(), [0.95, 1.05, 0.95], rtol=1e-6)


def test_zero_grad_forgets_the_gradients():
    """Without zero_grad, the next backward would add to the old gradient (walkthrough 1.1)."""
    w = sg.tensor([1.0, 2.0], requires_grad=True)
    opt = sg.optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    opt.zero_grad()  # set_to_none=True by default, as in PyTorch
    assert w.grad is None
    (w * w).sum().backward()
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(w.grad.numpy(), [0.0, 0.0])


def test_bad_hyper_parameters_are_refused():
    w = sg.tensor([1.0], requires_grad=True)
    with pytest.raises(ConfigError, match="lr"):
        sg.optim.SGD([w], lr=-0.1)
    with pytest.raises(ConfigError, match="betas"):
        sg.optim.Adam([w], betas=(0.9, 1.5))


# Each case: (sparkgrad class, torch class, keyword arguments shared by both).
OPTIMIZER_CASES = {
    "sgd": (sg.optim.SGD, torch.optim.SGD, {"lr": 0.1}),
    "sgd-momentum": (sg.optim.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    "sgd-nesterov-wd": (
        sg.optim.SGD,
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-2},
    ),
    "sgd-dampening": (
        sg.optim.SGD,
        torch.optim.SGD,
        {"lr": 0.05, "momentum": 0.5, "dampening": 0.3},
    ),
    "adam": (sg.optim.Adam, torch.optim.Adam, {"lr": 1e-3}),
    "adam-wd-amsgrad": (
        sg.optim.Adam,
        torch.optim.Adam,
        {"lr": 1e-2, "weight_decay": 1e-2, "amsgrad": True},
    ),
    "adamw": (sg.optim.AdamW, torch.optim.AdamW, {"lr": 1e-2, "betas": (0.8, 0.99)}),
}


@pytest.mark.parametrize("case", list(OPTIMIZER_CASES))
def test_optimizer_matches_torch_given_the_same_gradients(case: str):
    """Feed both optimizers the same float32 gradients for 10 steps; the weights must agree.

    Feeding the gradients directly isolates the optimizer's maths from the model's. The
    tolerance is a few float32 rounding steps, no more.
    """
    sg_cls, torch_cls, kwargs = OPTIMIZER_CASES[case]
    rng = np.random.default_rng(1)
    shapes = [(4, 3), (3,)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    params = [sg.tensor(v, requires_grad=True) for v in init]
    tparams = [torch.tensor(v, requires_grad=True) for v in init]
    opt, topt = sg_cls(params, **kwargs), torch_cls(tparams, **kwargs)
    for _ in range(10):
        for p, tp in zip(params, tparams):
            g = rng.standard_normal(p.shape).astype(np.float32)
            p.grad, tp.grad = sg.tensor(g), torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-6, atol=1e-7)

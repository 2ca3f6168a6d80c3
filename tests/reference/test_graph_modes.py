"""Switching the recording off: ``no_grad``, ``enable_grad``, ``detach``.

Inference and optimizer updates must not build a graph (it costs memory and time), and
the switch is per thread so that ranks running as threads do not disturb each other.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import sparkgrad as sg
from sparkgrad.errors import GradError


def test_no_grad_records_nothing_and_enable_grad_restores():
    """Inside ``no_grad`` results are plain tensors; ``enable_grad`` nests inside it."""
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    with sg.no_grad():
        y = x * 2
        assert not sg.is_grad_enabled()
        with sg.enable_grad():
            z = x * 2
        assert not sg.is_grad_enabled()
    assert sg.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None


def test_grad_mode_is_restored_after_an_exception():
    """An error inside ``with no_grad()`` must not leave recording switched off."""
    with pytest.raises(ZeroDivisionError):
        with sg.no_grad():
            raise ZeroDivisionError
    assert sg.is_grad_enabled()


def test_no_grad_and_enable_grad_as_decorators():
    """``@sg.no_grad()`` wraps a whole function, as ``@torch.no_grad()`` does."""
    x = sg.tensor([1.0], requires_grad=True)

    @sg.no_grad()
    def evaluate(v):
        return v * 2

    @sg.enable_grad()
    def train_step(v):
        return v * 2

    assert not evaluate(x).requires_grad
    with sg.no_grad():
        assert train_step(x).requires_grad
    assert evaluate.__name__ == "evaluate"


def test_grad_mode_is_thread_local():
    """One thread inside ``no_grad`` does not switch recording off in another thread."""
    entered, release = threading.Event(), threading.Event()
    seen = {}

    def worker():
        with sg.no_grad():
            seen["worker"] = sg.is_grad_enabled()
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=worker)
    thread.start()
    assert entered.wait(5)
    x = sg.tensor([1.0], requires_grad=True)
    recorded = (x * 2).requires_grad
    release.set()
    thread.join(5)
    assert seen["worker"] is False
    assert recorded and sg.is_grad_enabled()


def test_set_grad_enabled():
    """The functional switch, as ``torch.set_grad_enabled``."""
    x = sg.tensor([1.0], requires_grad=True)
    sg.set_grad_enabled(False)
    try:
        assert not (x + 1).requires_grad
    finally:
        sg.set_grad_enabled(True)
    assert (x + 1).requires_grad


def test_detach_cuts_the_graph():
    """Gradient stops at ``detach()``: only the attached path reaches x."""
    x = sg.tensor([2.0, 3.0], requires_grad=True)
    (x * x.detach()).sum().backward()  # d/dx (x · const) = const, not 2x
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 3.0])


def test_requires_grad_rules():
    """``requires_grad_`` works on float leaves only; it can't be unset on a non-leaf."""
    x = sg.tensor([1.0, 2.0])
    assert x.requires_grad_() is x and x.requires_grad
    with pytest.raises(GradError, match="floating point"):
        sg.tensor([1, 2]).requires_grad_()
    with pytest.raises(GradError, match="leaf"):
        (x * 2).requires_grad_(False)
    x.requires_grad_(False)
    assert not (x * 2).requires_grad


def test_updates_inside_no_grad_are_allowed_on_leaves():
    """The optimizer pattern: ``with no_grad(): w -= lr * w.grad`` via in-place ops."""
    w = sg.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    with sg.no_grad():
        w.sub_(w.grad, alpha=0.1)
    np.testing.assert_allclose(w.detach().numpy(), [0.8, 1.6], rtol=1e-6)
    assert w.is_leaf and w.requires_grad

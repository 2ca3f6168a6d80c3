"""``sg.autograd``: custom Functions on Tensors, ``grad``, ``backward(inputs=)``, against PyTorch.

Each program is written once against a module ``L`` and run with ``L = sparkgrad`` and
``L = torch``: a tutorial's custom op ports by changing the import.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad.errors import GradError


def run_both(program):
    out = []
    for lib in (sg, torch):
        value = program(lib)
        out.append(_plain(value))
    return out


def _plain(value):
    if isinstance(value, (sg.Tensor, torch.Tensor)):
        return value.detach().tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def legendre(L):
    """The custom Function of PyTorch's "Learning PyTorch with Examples"."""

    class LegendrePolynomial3(L.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return 0.5 * (5 * x**3 - 3 * x)

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * 1.5 * (5 * x**2 - 1)

    return LegendrePolynomial3


def test_the_tutorials_custom_function_trains_like_pytorch():
    """y = a + b·P3(c + d·x) fitted to sin by hand-written SGD, 200 steps."""
    x_np = np.linspace(-np.pi, np.pi, 100, dtype=np.float32)

    def program(L):
        P3 = legendre(L)
        x, y = L.tensor(x_np), L.tensor(np.sin(x_np))
        params = [L.tensor(v, requires_grad=True) for v in (0.0, -1.0, 0.0, 0.3)]
        losses = []
        for _ in range(200):
            a, b, c, d = params
            loss = (a + b * P3.apply(c + d * x) - y).pow(2).sum()
            losses.append(loss.item())
            loss.backward()
            with L.no_grad():
                for p in params:
                    p -= 5e-6 * p.grad
                    p.grad = None
        return losses[::40], params

    ours, theirs = run_both(program)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-4)
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-4, atol=1e-7)


def test_custom_function_names_its_node_and_passes_gradcheck():
    P3 = legendre(sg)
    x = sg.tensor([0.3, -0.7, 1.1], dtype=sg.float64, requires_grad=True)
    y = P3.apply(x)
    assert y.grad_fn.name() == "LegendrePolynomial3Backward" and not y.is_leaf
    assert sg.autograd.gradcheck(P3.apply, [x])


def test_gradcheck_catches_a_wrong_custom_backward():
    class Wrong(sg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * x  # should be 2x

    x = sg.tensor([0.5, 2.0], dtype=sg.float64, requires_grad=True)
    with pytest.raises(sg.autograd.GradcheckError):
        sg.autograd.gradcheck(Wrong.apply, [x])


def test_several_outputs_non_differentiable_ones_and_extra_arguments():
    def program(L):
        class ScaleAndRank(L.autograd.Function):
            @staticmethod
            def forward(ctx, x, k):
                ctx.k = k
                order = L.argsort(x) if hasattr(L, "argsort") else L.tensor([1, 0, 2])
                ctx.mark_non_differentiable(order)
                return x * k, order, x * x

            @staticmethod
            def backward(ctx, g_scaled, g_order, g_square):
                return g_scaled * ctx.k + g_square * 0, None

        x = L.tensor([0.5, -1.0, 2.0], requires_grad=True)
        scaled, order, square = ScaleAndRank.apply(x, 3.0)
        (scaled * scaled).sum().backward()  # square is unused: its gradient comes as zeros
        return x.grad, order.requires_grad, square.requires_grad

    ours, theirs = run_both(program)
    assert ours == theirs


def test_needs_input_grad_and_materialize_grads():
    seen = {}

    def program(L):
        class Probe(L.autograd.Function):
            @staticmethod
            def forward(ctx, x, y):
                ctx.set_materialize_grads(False)
                seen[L.__name__] = ctx.needs_input_grad
                return x * y, x + y

            @staticmethod
            def backward(ctx, g0, g1):
                seen[L.__name__ + " grads"] = (g0 is None, g1 is None)
                return g0 * 2, None

        x = L.tensor([1.0, 2.0], requires_grad=True)
        a, _ = Probe.apply(x, L.tensor([3.0, 4.0]))
        a.sum().backward()
        return x.grad

    ours, theirs = run_both(program)
    assert ours == theirs
    assert seen["sparkgrad"] == seen["torch"] == (True, False)
    assert seen["sparkgrad grads"] == seen["torch grads"] == (False, True)


def test_custom_function_errors_are_pytorchs():
    class TooFew(sg.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    x = sg.tensor([1.0], requires_grad=True)
    with pytest.raises(GradError, match=r"incorrect number of gradients \(expected 2, got 1\)"):
        TooFew.apply(x, x).sum().backward()

    class Saves(sg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * x

    h = x * 1
    out = Saves.apply(h)
    h.add_(1)
    with pytest.raises(GradError, match="modified by an inplace operation"):
        out.sum().backward()
    with pytest.raises(TypeError, match="save_for_backward can only save Tensors"):

        class SavesANumber(sg.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(2.0)
                return x

        SavesANumber.apply(x)


def test_a_custom_function_without_inputs_that_need_grad_records_nothing():
    P3 = legendre(sg)
    y = P3.apply(sg.tensor([1.0, 2.0]))
    assert y.grad_fn is None and not y.requires_grad
    with sg.no_grad():
        assert P3.apply(sg.tensor([1.0], requires_grad=True)).grad_fn is None


# ---- grad and backward ----------------------------------------------------------------------
def test_autograd_grad_matches_pytorch_and_leaves_dot_grad_alone():
    def program(L):
        x = L.tensor([1.0, 2.0], requires_grad=True)
        w = L.tensor([3.0, -4.0], requires_grad=True)
        h = x * w
        y = (h * h).sum()
        gx, gh = L.autograd.grad(y, [x, h], retain_graph=True)
        (gw,) = L.autograd.grad([y], [w], grad_outputs=[L.tensor(2.0)])
        return gx, gh, gw, x.grad is None, w.grad is None

    ours, theirs = run_both(program)
    assert ours == theirs


def test_autograd_grad_of_a_non_scalar_output_and_a_hooked_input():
    def program(L):
        x = L.tensor([1.0, -2.0, 3.0], requires_grad=True)
        x.register_hook(lambda g: g * 10)
        y = x.exp() * x
        (g,) = L.autograd.grad(y, x, grad_outputs=L.ones_like(y))
        return g

    ours, theirs = run_both(program)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_autograd_grad_unused_and_not_requiring_inputs():
    x = sg.tensor([1.0], requires_grad=True)
    z = sg.tensor([1.0], requires_grad=True)
    assert sg.autograd.grad((x * 2).sum(), [x, z], allow_unused=True)[1] is None
    zeros = sg.autograd.grad((x * 2).sum(), [x, z], materialize_grads=True)[1]
    assert zeros.tolist() == [0.0]
    with pytest.raises(GradError, match="at index 1 appears to not have been used"):
        sg.autograd.grad((x * 2).sum(), [x, z])
    with pytest.raises(GradError, match="at index 0 does not require grad"):
        sg.autograd.grad((x * 2).sum(), [sg.tensor([1.0])])
    with pytest.raises(GradError, match="create_graph"):
        sg.autograd.grad((x * 2).sum(), [x], create_graph=True)


def test_backward_with_inputs_accumulates_only_into_those():
    def program(L):
        x = L.tensor([1.0, 2.0], requires_grad=True)
        w = L.tensor([3.0, 4.0], requires_grad=True)
        h = x * w
        h.retain_grad()
        (h * h).sum().backward(inputs=[w, h])
        L.autograd.backward([(x * x).sum()], inputs=[x])
        return x.grad, w.grad, h.grad

    ours, theirs = run_both(program)
    assert ours == theirs


def test_variable_and_grad_mode_names():
    v = sg.autograd.Variable(sg.tensor([1.0, 2.0]), requires_grad=True)
    assert v.requires_grad and v.is_leaf
    with sg.set_grad_enabled(False):
        assert not sg.is_grad_enabled()
    assert sg.is_grad_enabled()
    with sg.inference_mode():
        assert not (v * 2).requires_grad
    with sg.autograd.no_grad():
        assert not sg.is_grad_enabled()

"""Mistakes get clear errors: what was expected, what was found.

A shape error deep inside NumPy ("operands could not be broadcast together with
remapped shapes [original->remapped]...") tells a learner little. sparkgrad raises its
own errors (``sparkgrad.errors``), and the message names *both* shapes involved.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparkgrad as sg
import sparkgrad.autodiff.functional as F
from sparkgrad.errors import DeviceError, GradError, ShapeError, SparkgradError

SHAPE_MISMATCHES = {
    # name: (thunk, strings the message must contain)
    "add": (lambda: sg.ones(2, 3) + sg.ones(4), ["(2, 3)", "(4,)"]),
    "mul_3d": (lambda: sg.ones(2, 3, 4) * sg.ones(3, 3, 1), ["(2, 3, 4)", "(3, 3, 1)"]),
    "maximum": (lambda: F.maximum(sg.ones(2), sg.ones(3)), ["(2,)", "(3,)"]),
    "matmul": (lambda: sg.ones(2, 3) @ sg.ones(4, 5), ["(2, 3)", "(4, 5)"]),
    "matmul_vector": (lambda: sg.ones(3) @ sg.ones(2), ["(3,)", "(2,)"]),
    "matmul_batch": (lambda: sg.ones(2, 2, 3) @ sg.ones(3, 3, 4), ["(2, 2, 3)", "(3, 3, 4)"]),
    "cat": (lambda: sg.cat([sg.ones(2, 3), sg.ones(3, 2)]), ["(2, 3)", "(3, 2)"]),
    "stack": (lambda: sg.stack([sg.ones(2), sg.ones(3)]), ["(2,)", "(3,)"]),
    "reshape": (lambda: sg.ones(2, 3).reshape(4, 2), ["(2, 3)", "(4, 2)"]),
    "expand": (lambda: sg.ones(2, 3).expand(4, 3), ["(2, 3)", "(4, 3)"]),
    "split": (lambda: sg.ones(5).split([2, 2]), ["[2, 2]", "5"]),
    "linear": (lambda: F.linear(sg.ones(2, 3), sg.ones(4, 5)), ["(2, 3)", "(4, 5)"]),
    "cross_entropy_targets": (
        lambda: F.cross_entropy(sg.ones(4, 3), sg.tensor([0, 1])),
        ["(2,)", "(4, 3)"],
    ),
    "nll_targets": (lambda: F.nll_loss(sg.ones(4, 3), sg.tensor([[0, 1]])), ["(1, 2)", "(4, 3)"]),
    "mse": (lambda: F.mse_loss(sg.ones(2, 3), sg.ones(4)), ["(2, 3)", "(4,)"]),
    "layer_norm": (lambda: F.layer_norm(sg.ones(2, 3), 4), ["(4,)", "(2, 3)"]),
    "permute": (lambda: sg.ones(2, 3).permute(0, 0), ["(0, 0)", "(2, 3)"]),
}


@pytest.mark.parametrize("name", SHAPE_MISMATCHES)
def test_shape_mismatch_names_both_shapes(name):
    """Each op raises ShapeError (also a ValueError) whose message shows both shapes."""
    thunk, needles = SHAPE_MISMATCHES[name]
    with pytest.raises(ShapeError) as info:
        thunk()
    message = str(info.value)
    for needle in needles:
        assert needle in message, f"{needle!r} missing from: {message}"
    assert isinstance(info.value, ValueError) and isinstance(info.value, SparkgradError)


def test_backward_on_a_non_scalar_needs_a_gradient():
    """torch's rule: only a single-element output creates its own gradient of 1."""
    y = sg.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(GradError, match=r"scalar outputs.*\(2, 3\)"):
        y.backward()


def test_backward_with_a_gradient_of_the_wrong_shape():
    """The gradient passed to ``backward`` must have the output's shape."""
    y = sg.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(ShapeError, match=r"\(3, 2\).*\(2, 3\)"):
        y.backward(sg.ones(3, 2))


def test_backward_on_something_that_does_not_require_grad():
    """No input asked for gradients, so there is no graph to walk back."""
    with pytest.raises(GradError, match="requires_grad=True"):
        (sg.ones(2) * 2).sum().backward()


@pytest.mark.parametrize(
    "make",
    [
        lambda: sg.tensor([1, 2], requires_grad=True),
        lambda: sg.arange(3, requires_grad=True),
        lambda: sg.zeros(2, dtype=np.int64, requires_grad=True),
    ],
)
def test_integer_tensors_cannot_require_grad(make):
    """Gradients are only defined for floating point tensors (as in torch)."""
    with pytest.raises(GradError, match="floating point"):
        make()


@pytest.mark.parametrize(
    "method,args",
    [
        ("add_", (1.0,)),
        ("sub_", (1.0,)),
        ("mul_", (2.0,)),
        ("div_", (2.0,)),
        ("zero_", ()),
        ("fill_", (3.0,)),
        ("copy_", (np.zeros(2, np.float32),)),
    ],
)
def test_in_place_op_on_a_leaf_that_requires_grad(method, args):
    """Changing a leaf in place would corrupt the graph; say how to do it (no_grad)."""
    w = sg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(GradError, match="no_grad"):
        getattr(w, method)(*args)
    np.testing.assert_array_equal(w.detach().numpy(), [1.0, 2.0])  # unchanged


def test_numpy_of_a_tensor_that_requires_grad():
    """As in torch: detach first, so it is explicit that the graph is left."""
    x = sg.tensor([1.0], requires_grad=True)
    with pytest.raises(GradError, match="detach"):
        x.numpy()
    assert x.detach().numpy().tolist() == [1.0]


def test_unknown_device_is_a_device_error():
    """Only 'cpu' and 'cuda' exist."""
    with pytest.raises(DeviceError, match="'tpu'"):
        sg.zeros(2, device="tpu")


def test_item_of_many_elements():
    """``item()`` needs exactly one element."""
    with pytest.raises(ValueError, match=r"\(2,\)"):
        sg.ones(2).item()


def test_gradcheck_refuses_float32_and_reports_a_wrong_backward():
    """float32 rounding hides errors, so it is refused; a wrong formula is caught by name."""
    with pytest.raises(GradError, match="float64"):
        sg.gradcheck(lambda t: t * 2, [sg.ones(2, requires_grad=True)])

    class WrongSquare(sg.Function):
        """z = a²; deliberately wrong backward 3a (instead of 2a)."""

        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, grad):
            (a,) = ctx.saved_tensors
            return grad * 3 * a

    x = sg.tensor([1.0, 2.0], dtype=np.float64, requires_grad=True)
    with pytest.raises(sg.GradcheckError, match="input 0"):
        sg.gradcheck(WrongSquare.apply, [x])

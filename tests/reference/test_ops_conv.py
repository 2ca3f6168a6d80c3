"""``F.conv2d`` and ``nn.Conv2d`` against PyTorch: every argument, forward and backward.

The convolution is im2col + one matmul with a hand-written col2im backward
(``sparkgrad/autodiff/ops/conv.py``), so the places a mistake hides are the index
arithmetic (stride, dilation, asymmetric "same" padding, groups) and the adjoint. Each is
compared with ``torch.nn.functional.conv2d`` — output, input, weight and bias gradients
for one random upstream gradient — over hypothesis-drawn shapes, and with finite
differences in float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import sparkgrad as sg
import sparkgrad.autodiff.functional as F
from sparkgrad.errors import ConfigError, ShapeError

# Tolerance: atol/rtol 1e-5. Both engines sum up to C·kh·kw products per output (and
# N·OH·OW per weight gradient) in float32 in different orders.
TOL = {"rtol": 1e-5, "atol": 1e-5}
pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@st.composite
def conv_cases(draw):
    """A random valid conv2d configuration: shapes, stride, padding (ints or strings), groups."""
    groups = draw(st.integers(1, 3))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(
        st.one_of(
            st.just("valid"),
            st.just("same"),
            st.integers(0, 2),
            st.tuples(st.integers(0, 2), st.integers(0, 2)),
        )
    )
    if padding == "same":
        stride = (1, 1)
    else:
        stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pads = (0, 0) if isinstance(padding, str) else np.broadcast_to(padding, (2,))
    low_h = max(1, dilation[0] * (kh - 1) + 1 - 2 * int(pads[0]))
    low_w = max(1, dilation[1] * (kw - 1) + 1 - 2 * int(pads[1]))
    h, w = draw(st.integers(low_h, low_h + 5)), draw(st.integers(low_w, low_w + 5))
    batch = draw(st.sampled_from([(), (1,), (2,), (3,)]))  # () = unbatched (C, H, W)
    return {
        "x": batch + (c_in, h, w),
        "w": (c_out, c_in // groups, kh, kw),
        "bias": draw(st.booleans()),
        "kwargs": {
            "stride": stride,
            "padding": padding,
            "dilation": dilation,
            "groups": groups,
        },
        "seed": draw(st.integers(0, 2**16)),
    }


@settings(max_examples=60, deadline=None)
@given(case=conv_cases())
def test_conv2d_matches_torch(case, device, check_op):
    """Output and the gradients of input, weight and bias equal torch's, for any arguments."""
    seed = case["seed"]
    arrays = [_x(case["x"], seed), _x(case["w"], seed + 1)]
    if case["bias"]:
        arrays.append(_x(case["w"][:1], seed + 2))
    kwargs = case["kwargs"]
    check_op(
        lambda *a: F.conv2d(*a, **kwargs),
        lambda *a: TF.conv2d(*a, **kwargs),
        arrays,
        device,
        **TOL,
    )


@pytest.mark.parametrize(
    "x_shape,w_shape,kwargs",
    [
        ((2, 1, 28, 28), (32, 1, 3, 3), {}),  # MNIST conv1
        ((2, 32, 26, 26), (64, 32, 3, 3), {}),  # MNIST conv2
        ((1, 2, 7, 6), (3, 2, 4, 2), {"padding": "same"}),  # even kernels: extra pad bottom/right
        ((1, 2, 9, 8), (3, 2, 2, 4), {"padding": "same", "dilation": (3, 1)}),
        ((2, 4, 8, 8), (4, 1, 3, 3), {"groups": 4, "padding": 1}),  # depthwise
        ((1, 3, 11, 10), (2, 3, 3, 3), {"stride": 3, "padding": (2, 0)}),  # odd, stride > 1
        ((1, 2, 5, 5), (2, 2, 5, 5), {}),  # the kernel covers the whole image: a 1x1 output
        ((2, 3, 4, 4), (5, 3, 1, 1), {}),  # 1x1 kernel: the im2col view needs no copy
    ],
)
def test_conv2d_named_cases_match_torch(x_shape, w_shape, kwargs, device, check_op):
    """The shapes tutorials use, depthwise, even kernels with 'same', full-image kernels.

    The weights have PyTorch's init scale (1/sqrt(fan_in)), so outputs are O(1) as in a
    real network. Tolerance of the gradients: atol 1e-4. A weight gradient of the MNIST
    layers sums N·OH·OW ≈ 1,300 products of size ~1 (Σ|terms| ≈ 900), so float32 summation
    in another order differs by up to ~u·900 ≈ 5e-5 where the sum cancels to a small value.
    """
    fan_in = w_shape[1] * w_shape[2] * w_shape[3]
    arrays = [_x(x_shape, 1), _x(w_shape, 2) / np.float32(math.sqrt(fan_in)), _x(w_shape[:1], 3)]
    check_op(
        lambda *a: F.conv2d(*a, **kwargs),
        lambda *a: TF.conv2d(*a, **kwargs),
        arrays,
        device,
        **TOL,
        grad_atol=1e-4,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"stride": 2, "padding": 1},
        {"padding": "same", "dilation": 2},
        {"groups": 2, "stride": (1, 2)},
    ],
)
def test_conv2d_gradcheck(kwargs, device, check_grad):
    """Finite differences in float64 agree with the col2im backward for x, W and b."""
    arrays = [_x((2, 2, 5, 6), 4), _x((2, 2 // kwargs.get("groups", 1), 3, 2), 5), _x((2,), 6)]
    check_grad(lambda *a: F.conv2d(*a, **kwargs), arrays, device)


@pytest.mark.parametrize("need", ["input", "weight"])
def test_conv2d_gradient_of_one_operand_only(need, device):
    """Only the operand that requires grad gets one (the op saves just what that needs)."""
    xv, wv = _x((2, 3, 6, 6), 7), _x((4, 3, 3, 3), 8)
    x = sg.tensor(xv, device=device, requires_grad=need == "input")
    w = sg.tensor(wv, device=device, requires_grad=need == "weight")
    tx = torch.tensor(xv, requires_grad=need == "input")
    tw = torch.tensor(wv, requires_grad=need == "weight")
    (F.conv2d(x, w, stride=2, padding=1) ** 2).sum().backward()
    (TF.conv2d(tx, tw, stride=2, padding=1) ** 2).sum().backward()
    got, ref = (x, tx) if need == "input" else (w, tw)
    other = w if need == "input" else x
    np.testing.assert_allclose(got.grad.to("cpu").numpy(), ref.grad.numpy(), rtol=1e-5, atol=1e-4)
    assert other.grad is None


def test_conv2d_does_not_modify_inputs(device):
    """The bias is added in place into the op's own output, never into the operands."""
    xv, wv, bv = _x((1, 2, 5, 5), 1), _x((3, 2, 3, 3), 2), _x((3,), 3)
    x, w, b = (sg.tensor(a, device=device) for a in (xv, wv, bv))
    F.conv2d(x, w, b, padding=1)
    for t, a in ((x, xv), (w, wv), (b, bv)):
        np.testing.assert_array_equal(t.to("cpu").numpy(), a)


# ---- errors, with PyTorch's messages as the guide -------------------------------------
ERRORS = {
    "channels": (
        lambda: F.conv2d(sg.ones(2, 3, 5, 5), sg.ones(4, 2, 3, 3)),
        ShapeError,
        r"weight of size \[4, 2, 3, 3\], expected input\[2, 3, 5, 5\] to have 2 channels, "
        r"but got 3 channels",
    ),
    "groups_weight": (
        lambda: F.conv2d(sg.ones(2, 4, 5, 5), sg.ones(3, 2, 3, 3), groups=2),
        ShapeError,
        r"groups=2, expected weight to be divisible by 2 at dimension 0",
    ),
    "kernel_too_big": (
        lambda: F.conv2d(sg.ones(1, 1, 4, 4), sg.ones(1, 1, 3, 3), dilation=2),
        ShapeError,
        r"padded input size per channel: \(4 x 4\). Kernel size: \(5 x 5\)",
    ),
    "same_strided": (
        lambda: F.conv2d(sg.ones(1, 1, 5, 5), sg.ones(1, 1, 3, 3), stride=2, padding="same"),
        ConfigError,
        "padding='same' is not supported for strided convolutions",
    ),
    "bad_string": (
        lambda: F.conv2d(sg.ones(1, 1, 5, 5), sg.ones(1, 1, 3, 3), padding="full"),
        ConfigError,
        "Invalid padding string 'full'",
    ),
    "negative_padding": (
        lambda: F.conv2d(sg.ones(1, 1, 5, 5), sg.ones(1, 1, 3, 3), padding=-1),
        ConfigError,
        "negative padding",
    ),
    "zero_stride": (
        lambda: F.conv2d(sg.ones(1, 1, 5, 5), sg.ones(1, 1, 3, 3), stride=0),
        ConfigError,
        "non-positive stride",
    ),
    "bias_size": (
        lambda: F.conv2d(sg.ones(1, 1, 5, 5), sg.ones(2, 1, 3, 3), sg.ones(3)),
        ShapeError,
        r"expected bias to be 1-dimensional with 2 elements, but got bias of size \[3\]",
    ),
    "input_rank": (
        lambda: F.conv2d(sg.ones(5, 5), sg.ones(1, 1, 3, 3)),
        ShapeError,
        r"Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input of size: "
        r"\[5, 5\]",
    ),
    "stride_length": (
        lambda: F.conv2d(sg.ones(1, 1, 5, 5), sg.ones(1, 1, 3, 3), stride=(1, 1, 1)),
        ConfigError,
        "stride must be a single int or a tuple of two ints",
    ),
    "module_in_groups": (lambda: sg.nn.Conv2d(3, 4, 3, groups=2), ConfigError, "in_channels"),
    "module_out_groups": (lambda: sg.nn.Conv2d(4, 3, 3, groups=2), ConfigError, "out_channels"),
    "module_same_strided": (
        lambda: sg.nn.Conv2d(4, 4, 3, stride=2, padding="same"),
        ConfigError,
        "strided",
    ),
    "module_padding_mode": (
        lambda: sg.nn.Conv2d(4, 4, 3, padding_mode="mirror"),
        ConfigError,
        "padding_mode must be one of",
    ),
    "module_wrong_channels": (
        lambda: sg.nn.Conv2d(3, 4, 3)(sg.ones(1, 2, 5, 5)),
        ShapeError,
        "to have 3 channels, but got 2 channels",
    ),
    "reflect_too_wide": (
        lambda: sg.nn.Conv2d(1, 1, 3, padding=3, padding_mode="reflect")(sg.ones(1, 1, 3, 3)),
        ShapeError,
        "Padding size should be less than the corresponding input dimension",
    ),
}


@pytest.mark.parametrize("name", ERRORS)
def test_conv2d_errors_say_what_was_expected(name):
    """Each mistake raises sparkgrad's error (a ValueError) with PyTorch's wording."""
    thunk, error, pattern = ERRORS[name]
    with pytest.raises(error, match=pattern):
        thunk()


# ---- nn.Conv2d ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args,kwargs",
    [
        ((1, 32, 3, 1), {}),
        ((4, 8, (3, 5)), {"stride": 2, "padding": 1, "dilation": 2, "groups": 2, "bias": False}),
        ((3, 6, 2), {"padding": "same"}),
        ((2, 2, 3), {"padding": (1, 2), "padding_mode": "reflect"}),
        ((2, 2, 3), {"padding": 1, "padding_mode": "replicate"}),
        ((2, 2, (2, 3)), {"padding": "same", "padding_mode": "circular"}),
    ],
)
def test_conv2d_module_matches_torch(args, kwargs):
    """Same repr, same state_dict keys and shapes; with copied weights the same output and
    gradients (every padding mode, including "same" with an even kernel)."""
    sg.manual_seed(0)
    layer, tlayer = sg.nn.Conv2d(*args, **kwargs), torch.nn.Conv2d(*args, **kwargs)
    assert repr(layer) == repr(tlayer)
    assert {k: v.shape for k, v in layer.state_dict().items()} == {
        k: tuple(v.shape) for k, v in tlayer.state_dict().items()
    }
    tlayer.load_state_dict({k: torch.tensor(v.numpy()) for k, v in layer.state_dict().items()})
    xv = _x((2, args[0], 6, 7), 9)
    x, tx = sg.tensor(xv, requires_grad=True), torch.tensor(xv, requires_grad=True)
    y, ty = layer(x), tlayer(tx)
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), **TOL)
    g = _x(ty.shape, 10)
    y.backward(sg.tensor(g))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), **TOL)
    for name, p in tlayer.named_parameters():
        np.testing.assert_allclose(getattr(layer, name).grad.numpy(), p.grad.numpy(), **TOL)


def test_conv2d_module_takes_unbatched_input_and_torch_weights():
    """A (C, H, W) image gives (O, OH, OW); torch's state_dict loads in unchanged."""
    torch.manual_seed(0)
    tlayer = torch.nn.Conv2d(3, 5, 3, padding=1)
    layer = sg.nn.Conv2d(3, 5, 3, padding=1)
    layer.load_state_dict(tlayer.state_dict())
    xv = _x((3, 8, 8), 11)
    out = layer(sg.tensor(xv))
    assert out.shape == (5, 8, 8)
    np.testing.assert_allclose(
        out.detach().numpy(), tlayer(torch.tensor(xv)).detach().numpy(), **TOL
    )


def test_conv2d_init_follows_pytorch_distribution():
    """Weight and bias uniform on ±1/sqrt(fan_in), fan_in = in/groups·kh·kw (KS test vs torch)."""
    sg.manual_seed(0)
    torch.manual_seed(0)
    layer, tlayer = sg.nn.Conv2d(64, 128, 3, groups=2), torch.nn.Conv2d(64, 128, 3, groups=2)
    bound = 1 / math.sqrt(32 * 9)
    w, tw = layer.weight.detach().numpy().ravel(), tlayer.weight.detach().numpy().ravel()
    b = layer.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.99 * bound
    assert stats.kstest(w, "uniform", args=(-bound, 2 * bound)).pvalue > 1e-3
    assert stats.ks_2samp(w, tw).pvalue > 1e-3
    assert stats.kstest(b, "uniform", args=(-bound, 2 * bound)).pvalue > 1e-3
    # with teeth: the bound of a wrong fan_in (forgetting the groups) is rejected
    wrong = 1 / math.sqrt(64 * 9)
    assert stats.kstest(w, "uniform", args=(-wrong, 2 * wrong)).pvalue < 1e-3

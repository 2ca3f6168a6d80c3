"""Max, average and adaptive average pooling against PyTorch, forward and backward.

The rules that are easy to get subtly wrong, each checked against ``torch.nn.functional``:

- max pooling's gradient goes to the *first* maximum of a window (ties are common after
  a ReLU), padding is ``-inf``, a NaN in a window comes out as NaN;
- ``ceil_mode``'s last window must start inside the input or the left padding;
- average pooling's divisor: padding counted (``count_include_pad``) but never the
  ceil-mode overhang, or replaced by ``divisor_override``;
- adaptive pooling's windows ``floor(i·H/OH) .. ceil((i+1)·H/OH)``, which overlap when
  H is not a multiple of OH.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

import sparkgrad as sg
import sparkgrad.autodiff.functional as F
from sparkgrad.errors import ShapeError

# Tolerance: float32 default of check_op (rtol 1e-5, atol 1e-6); a pooled value is one
# input value (max) or a mean of a few, so both engines agree to a few ulps.


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@st.composite
def pool_cases(draw, with_dilation: bool):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2))) if with_dilation else (1, 1)
    ceil_mode = draw(st.booleans())
    if with_dilation:
        # Sizes of at least the dilated kernel: then no window lies wholly in the padding.
        # (One that does is -inf here; torch 2.13's max_pool2d backward then writes out of
        # bounds and corrupts the heap, so there is no truth to compare with.)
        low = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    else:  # as small as the padded input allows
        low = [max(1, k - 2 * p) for k, p in zip(kernel, padding)]
    shape = (
        draw(st.sampled_from([(), (1,), (2,)]))  # () = unbatched (C, H, W)
        + (draw(st.integers(1, 3)),)
        + tuple(draw(st.integers(lo, lo + 6)) for lo in low)
    )
    return {
        "shape": shape,
        "kernel_size": kernel,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "ceil_mode": ceil_mode,
        "seed": draw(st.integers(0, 2**16)),
    }


@settings(max_examples=60, deadline=None)
@given(case=pool_cases(with_dilation=True))
def test_max_pool2d_matches_torch(case, device, check_op):
    """Values and gradients for any kernel, stride, padding, dilation and ceil_mode."""
    case = dict(case)
    shape, seed = case.pop("shape"), case.pop("seed")
    check_op(
        lambda x: F.max_pool2d(x, **case),
        lambda x: TF.max_pool2d(x, **case),
        [_x(shape, seed)],
        device,
    )


def test_max_pool2d_ties_send_the_gradient_to_the_first_maximum(device, check_op):
    """After a ReLU many windows are all zeros: the whole gradient goes to the first one."""
    x = np.maximum(_x((2, 3, 8, 8), 1), 0)
    x[0, 0, :2, :2] = 5.0  # a window of four equal maxima
    for kwargs in ({"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1}):
        check_op(
            lambda t, kw=kwargs: F.max_pool2d(t, **kw),
            lambda t, kw=kwargs: TF.max_pool2d(t, **kw),
            [x],
            device,
        )


def test_max_pool2d_indices_match_torch(device):
    """``return_indices=True``: each maximum's flat index into H·W, int64, as PyTorch's."""
    x = _x((2, 3, 9, 7), 2)
    for kwargs in (
        {"kernel_size": 2},
        {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
        {"kernel_size": (2, 3), "stride": 1, "dilation": (2, 1)},
    ):
        out, idx = F.max_pool2d(sg.tensor(x, device=device), return_indices=True, **kwargs)
        t_out, t_idx = TF.max_pool2d(torch.tensor(x), return_indices=True, **kwargs)
        np.testing.assert_array_equal(out.to("cpu").numpy(), t_out.numpy())
        assert idx.dtype == np.int64
        np.testing.assert_array_equal(idx.to("cpu").numpy(), t_idx.numpy())
    # unbatched input: indices without the batch axis
    _, idx = F.max_pool2d(sg.tensor(x[0], device=device), 2, return_indices=True)
    np.testing.assert_array_equal(
        idx.to("cpu").numpy(), TF.max_pool2d(torch.tensor(x[0]), 2, return_indices=True)[1]
    )


def test_max_pool2d_propagates_nan(device):
    """A NaN anywhere in a window makes that output NaN (it is never silently dropped)."""
    x = _x((1, 1, 4, 4), 3)
    x[0, 0, 1, 1] = np.nan
    out = F.max_pool2d(sg.tensor(x, device=device), 2).to("cpu").numpy()
    np.testing.assert_array_equal(out, TF.max_pool2d(torch.tensor(x), 2).numpy())
    assert np.isnan(out[0, 0, 0, 0]) and np.isfinite(out[0, 0, 1:, 1:]).all()


@settings(max_examples=60, deadline=None)
@given(
    case=pool_cases(with_dilation=False),
    count_include_pad=st.booleans(),
    divisor_override=st.one_of(st.none(), st.integers(1, 7)),
)
def test_avg_pool2d_matches_torch(case, count_include_pad, divisor_override, device, check_op):
    """Values and gradients with every divisor rule (padding counted or not, overridden)."""
    case = dict(case)
    shape, seed = case.pop("shape"), case.pop("seed")
    del case["dilation"]
    case.update(count_include_pad=count_include_pad, divisor_override=divisor_override)
    check_op(
        lambda x: F.avg_pool2d(x, **case),
        lambda x: TF.avg_pool2d(x, **case),
        [_x(shape, seed)],
        device,
    )


@pytest.mark.parametrize(
    "shape,output_size",
    [
        ((2, 3, 8, 8), 1),  # global average pooling
        ((2, 3, 7, 5), (3, 2)),  # windows overlap: 7 rows into 3
        ((1, 2, 6, 9), (None, 4)),  # None keeps that size
        ((2, 4, 5), (7, 3)),  # unbatched, and more outputs than input rows
        ((1, 1, 10, 10), (5, 5)),  # divisible: plain 2x2 average pooling
    ],
)
def test_adaptive_avg_pool2d_matches_torch(shape, output_size, device, check_op):
    """Output size fixed, window bounds floor(i·H/OH) to ceil((i+1)·H/OH), as PyTorch."""
    check_op(
        lambda x: F.adaptive_avg_pool2d(x, output_size),
        lambda x: TF.adaptive_avg_pool2d(x, output_size),
        [_x(shape, 4)],
        device,
    )


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True),
        lambda x: F.max_pool2d(x, 2, 1, dilation=2),
        lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        lambda x: F.avg_pool2d(x, 2, divisor_override=3),
        lambda x: F.adaptive_avg_pool2d(x, (3, 2)),
    ],
    ids=["max_ceil", "max_dilated", "avg_ceil_exclude", "avg_override", "adaptive"],
)
def test_pooling_gradcheck(fn, device, check_grad):
    """Finite differences in float64 agree with each pooling backward."""
    check_grad(fn, [_x((2, 2, 7, 6), 5)], device)


# ---- modules -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,args,kwargs",
    [
        ("MaxPool2d", (2,), {}),
        ("MaxPool2d", (3, 2, 1), {"ceil_mode": True, "dilation": 1}),
        ("MaxPool2d", ((2, 3),), {"stride": (1, 2), "dilation": (2, 1)}),
        ("AvgPool2d", (2,), {}),
        ("AvgPool2d", (3, 2, 1, True, False, 2), {}),
        ("AdaptiveAvgPool2d", ((None, 3),), {}),
        ("AdaptiveAvgPool2d", (1,), {}),
    ],
)
def test_pooling_modules_match_torch(name, args, kwargs, check_op):
    """Same repr as ``torch.nn``, same output and input gradient."""
    layer, tlayer = getattr(sg.nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)
    assert repr(layer) == repr(tlayer)
    check_op(layer, tlayer, [_x((2, 3, 9, 8), 6)])


def test_max_pool2d_module_returns_indices():
    """``MaxPool2d(..., return_indices=True)`` returns (values, indices) as torch's module."""
    x = _x((1, 2, 6, 6), 7)
    out, idx = sg.nn.MaxPool2d(2, return_indices=True)(sg.tensor(x))
    t_out, t_idx = torch.nn.MaxPool2d(2, return_indices=True)(torch.tensor(x))
    np.testing.assert_array_equal(out.numpy(), t_out.numpy())
    np.testing.assert_array_equal(idx.numpy(), t_idx.numpy())


# ---- errors ------------------------------------------------------------------------------
ERRORS = {
    "pad_over_half": (
        lambda: F.max_pool2d(sg.ones(1, 1, 9, 9), 3, padding=2),
        "pad should be at most half of kernel size, but got pad=2, kernel_size=3",
    ),
    "avg_pad_over_half": (
        lambda: F.avg_pool2d(sg.ones(1, 1, 9, 9), 2, padding=2),
        "pad should be at most half of kernel size",
    ),
    "too_small": (
        lambda: F.max_pool2d(sg.ones(2, 3, 5, 5), 7),
        r"Given input size: \(3x5x5\). Calculated output size: \(3x0x0\). Output size is too small",
    ),
    "rank": (
        lambda: F.max_pool2d(sg.ones(3, 4), 2),
        r"non-empty 3D or 4D \(batch mode\) tensor expected for input",
    ),
    "adaptive_size": (
        lambda: F.adaptive_avg_pool2d(sg.ones(1, 1, 4, 4), (2,)),
        "output_size must be 2",
    ),
    "adaptive_rank": (
        lambda: F.adaptive_avg_pool2d(sg.ones(4, 4), 2),
        r"Expected 3D or 4D tensor, but got \[4, 4\]",
    ),
}


@pytest.mark.parametrize("name", ERRORS)
def test_pooling_errors_say_what_was_expected(name):
    """A ShapeError (a ValueError) with PyTorch's wording for each impossible pooling."""
    thunk, pattern = ERRORS[name]
    with pytest.raises(ShapeError, match=pattern):
        thunk()


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"kernel_size": 0}, "kernel size should be greater than zero"),
        ({"kernel_size": 2, "stride": 0}, "stride should be greater than zero"),
        ({"kernel_size": (2, 2, 2)}, "kernel_size must be a single int or a tuple of two ints"),
    ],
)
def test_pooling_argument_errors(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        F.max_pool2d(sg.ones(1, 1, 4, 4), **kwargs)

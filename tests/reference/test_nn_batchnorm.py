"""Batch normalisation against PyTorch: the maths, the running statistics, the state dict.

``F.batch_norm`` is compared with ``torch.nn.functional.batch_norm`` (output and the
gradients of input, weight and bias, in training and evaluation) and with finite
differences; ``BatchNorm1d``/``BatchNorm2d`` are run side by side with ``torch.nn``'s for
several training steps, then in eval mode: the running mean, the *unbiased* running
variance, ``num_batches_tracked`` and the outputs must agree throughout, and the state
dict must load into PyTorch and back with PyTorch's keys.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import sparkgrad as sg
import sparkgrad.autodiff.functional as F
from sparkgrad.errors import ShapeError

# Tolerance: float32, atol 1e-5. The statistics are means over up to a few hundred values
# and the backward subtracts two such means, so summation order shows in the last bits.
TOL = {"rtol": 1e-5, "atol": 1e-5}


def _x(shape, seed=0, scale=1.0, shift=0.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale + shift).astype(np.float32)


SHAPES = [(8, 3), (4, 3, 5), (4, 3, 5, 6), (2, 2, 3, 3, 2)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(shape, affine, training, device, check_op):
    """Output and gradients (x, weight, bias), batch statistics or running ones."""
    c = shape[1]
    arrays = [_x(shape, 1, scale=2.0, shift=0.5)]
    if affine:
        arrays += [_x((c,), 2) + 1, _x((c,), 3)]
    mean, var = _x((c,), 4), np.abs(_x((c,), 5)) + 0.5

    def fn(x, *wb):
        rm, rv = sg.tensor(mean, device=device), sg.tensor(var, device=device)
        return F.batch_norm(x, rm, rv, *wb, training=training, momentum=0.1, eps=1e-5)

    def t_fn(x, *wb):
        rm, rv = torch.tensor(mean), torch.tensor(var)
        return TF.batch_norm(x, rm, rv, *wb, training=training, momentum=0.1, eps=1e-5)

    check_op(fn, t_fn, arrays, device, **TOL)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_gradcheck(training, device, check_grad):
    """Finite differences in float64 agree with the one-Function backward (both modes)."""
    mean, var = _x((3,), 4), np.abs(_x((3,), 5)) + 0.5

    def fn(x, w, b):
        rm = sg.tensor(mean, dtype=sg.float64, device=device)
        rv = sg.tensor(var, dtype=sg.float64, device=device)
        return F.batch_norm(x, rm, rv, w, b, training=training)

    check_grad(fn, [_x((4, 3, 2, 3), 1), _x((3,), 2) + 1, _x((3,), 3)], device)


def test_batch_norm_updates_running_stats_in_place_like_torch(device):
    """One training call moves the buffers: mean by momentum, variance unbiased (m/(m-1))."""
    x = _x((6, 4, 3, 3), 7, scale=3.0, shift=2.0)
    rm, rv = sg.zeros(4, device=device), sg.ones(4, device=device)
    rm_array = rm.array
    t_rm, t_rv = torch.zeros(4), torch.ones(4)
    F.batch_norm(sg.tensor(x, device=device), rm, rv, training=True, momentum=0.3)
    TF.batch_norm(torch.tensor(x), t_rm, t_rv, training=True, momentum=0.3)
    assert rm.array is rm_array  # updated in place, not replaced
    np.testing.assert_allclose(rm.to("cpu").numpy(), t_rm.numpy(), **TOL)
    np.testing.assert_allclose(rv.to("cpu").numpy(), t_rv.numpy(), **TOL)
    unbiased = x.transpose(1, 0, 2, 3).reshape(4, -1).var(axis=1, ddof=1)
    np.testing.assert_allclose(rv.to("cpu").numpy(), 0.7 + 0.3 * unbiased, rtol=1e-5)


def _pair(cls_name, *args, **kwargs):
    layer = getattr(sg.nn, cls_name)(*args, **kwargs)
    tlayer = getattr(torch.nn, cls_name)(*args, **kwargs)
    return layer, tlayer


def _check_buffers(layer, tlayer):
    for name, tbuf in tlayer.named_buffers():
        buf = getattr(layer, name)
        assert buf.dtype == tbuf.numpy().dtype and buf.shape == tuple(tbuf.shape), name
        np.testing.assert_allclose(buf.numpy(), tbuf.numpy(), **TOL, err_msg=name)


@pytest.mark.parametrize(
    "cls_name,shape",
    [("BatchNorm1d", (8, 5)), ("BatchNorm1d", (4, 5, 7)), ("BatchNorm2d", (4, 5, 6, 6))],
)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_running_stats_and_eval_output_follow_torch(cls_name, shape, momentum):
    """Five training steps (forward, backward, SGD), then eval: the same everything.

    ``momentum=None`` is the cumulative average 1/num_batches_tracked.
    """
    layer, tlayer = _pair(cls_name, shape[1], momentum=momentum)
    opt = sg.optim.SGD(layer.parameters(), lr=0.1)
    t_opt = torch.optim.SGD(tlayer.parameters(), lr=0.1)
    for step in range(5):
        xv = _x(shape, 10 + step, scale=1.0 + step, shift=step - 2.0)
        y, ty = layer(sg.tensor(xv)), tlayer(torch.tensor(xv))
        np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), **TOL)
        g = _x(shape, 20 + step)
        opt.zero_grad()
        t_opt.zero_grad()
        (y * sg.tensor(g)).sum().backward()
        (ty * torch.tensor(g)).sum().backward()
        opt.step()
        t_opt.step()
        _check_buffers(layer, tlayer)
    assert int(layer.num_batches_tracked.item()) == 5
    layer.eval()
    tlayer.eval()
    xv = _x(shape, 99, scale=2.0)
    np.testing.assert_allclose(
        layer(sg.tensor(xv)).detach().numpy(), tlayer(torch.tensor(xv)).detach().numpy(), **TOL
    )
    _check_buffers(layer, tlayer)  # eval does not touch the buffers


def test_eval_mode_of_a_single_sample_uses_running_stats():
    """In eval one sample is fine (no batch statistics needed) and depends on nothing else."""
    layer, tlayer = _pair("BatchNorm2d", 3)
    xv = _x((4, 3, 5, 5), 1, shift=1.0)
    layer(sg.tensor(xv))
    tlayer(torch.tensor(xv))
    layer.eval()
    tlayer.eval()
    one = _x((1, 3, 1, 1), 2)
    np.testing.assert_allclose(
        layer(sg.tensor(one)).detach().numpy(), tlayer(torch.tensor(one)).detach().numpy(), **TOL
    )


@pytest.mark.parametrize("kwargs", [{"track_running_stats": False}, {"affine": False}])
def test_options_follow_torch(kwargs):
    """Without running stats eval normalises with the batch; without affine no parameters."""
    layer, tlayer = _pair("BatchNorm2d", 3, **kwargs)
    assert repr(layer) == repr(tlayer)
    assert list(layer.state_dict()) == list(tlayer.state_dict())
    for mode in ("train", "eval"):
        getattr(layer, mode)()
        getattr(tlayer, mode)()
        xv = _x((4, 3, 4, 4), 3, shift=1.0)
        np.testing.assert_allclose(
            layer(sg.tensor(xv)).detach().numpy(), tlayer(torch.tensor(xv)).detach().numpy(), **TOL
        )


def test_state_dict_keys_values_load_into_torch_and_back():
    """Keys equal PyTorch's exactly (num_batches_tracked an int64 0-d tensor), both ways."""
    layer, tlayer = _pair("BatchNorm2d", 4)
    assert list(layer.state_dict()) == list(tlayer.state_dict())
    assert layer.num_batches_tracked.shape == () and layer.num_batches_tracked.dtype == np.int64
    for step in range(3):
        layer(sg.tensor(_x((5, 4, 3, 3), step, shift=1.0)))
    with sg.no_grad():
        layer.weight.array[...] = _x((4,), 7)
    # sparkgrad -> torch
    fresh = torch.nn.BatchNorm2d(4)
    fresh.load_state_dict(
        {k: torch.from_numpy(v.numpy().copy()) for k, v in layer.state_dict().items()}
    )
    assert int(fresh.num_batches_tracked) == 3
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), layer.state_dict()[k].numpy(), err_msg=k)
    # torch -> sparkgrad
    for step in range(2):
        fresh(torch.tensor(_x((5, 4, 3, 3), 10 + step)))
    back = sg.nn.BatchNorm2d(4)
    back.load_state_dict(fresh.state_dict())
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(back.state_dict()[k].numpy(), v.numpy(), err_msg=k)
    assert back.num_batches_tracked.dtype == np.int64 and int(back.num_batches_tracked.item()) == 5


def test_repr_and_to_keep_the_counter_an_integer():
    """``repr`` equals torch's; ``.double()`` casts the statistics but not the counter."""
    layer, tlayer = _pair("BatchNorm1d", 6, eps=1e-3, momentum=0.2)
    assert repr(layer) == repr(tlayer)
    layer.double()
    assert layer.running_mean.dtype == np.float64 and layer.num_batches_tracked.dtype == np.int64


ERRORS = {
    "features": (
        lambda: sg.nn.BatchNorm2d(3)(sg.ones(2, 4, 5, 5)),
        "expects 3 channels on dim 1, but got input of shape \\(2, 4, 5, 5\\)",
    ),
    "one_value_1d": (
        lambda: sg.nn.BatchNorm1d(3)(sg.ones(1, 3)),
        r"Expected more than 1 value per channel when training, got input size \(1, 3\)",
    ),
    "one_value_2d": (
        lambda: sg.nn.BatchNorm2d(3)(sg.ones(1, 3, 1, 1)),
        "Expected more than 1 value per channel when training",
    ),
    "rank_1d": (
        lambda: sg.nn.BatchNorm1d(3)(sg.ones(2, 3, 4, 5)),
        r"expected 2D or 3D input \(got 4D input\)",
    ),
    "rank_2d": (lambda: sg.nn.BatchNorm2d(3)(sg.ones(2, 3, 4)), r"expected 4D input \(got 3D"),
    "running_size": (
        lambda: F.batch_norm(sg.ones(2, 3, 4, 4), sg.zeros(4), sg.ones(4)),
        "running_mean should contain 3 elements not 4",
    ),
}


@pytest.mark.parametrize("name", ERRORS)
def test_batch_norm_errors_say_what_was_expected(name):
    """PyTorch's messages, as ShapeError (a ValueError)."""
    thunk, pattern = ERRORS[name]
    with pytest.raises(ShapeError, match=pattern):
        thunk()

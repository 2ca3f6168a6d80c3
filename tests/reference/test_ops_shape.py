"""Ops that move values without changing them: views, indexing, joining, casts.

Their backward is bookkeeping: put each gradient element back where its value came
from. Two traps are checked on purpose: an index that repeats an element must *add* the
gradients (``x[[0, 0]]``), and a cast must give the gradient back in the input's dtype.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes

import sparkgrad as sg


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


SAME_CALL = {  # the same method call on a sparkgrad and a torch tensor
    "reshape": lambda t: t.reshape(4, 6),
    "reshape_-1": lambda t: t.reshape(-1, 3),
    "reshape_tuple": lambda t: t.reshape((2, 12)),
    "view": lambda t: t.view(3, 8),
    "flatten": lambda t: t.flatten(),
    "flatten_1": lambda t: t.flatten(1),
    "flatten_0_1": lambda t: t.flatten(0, 1),
    "transpose": lambda t: t.transpose(0, 2),
    "transpose_neg": lambda t: t.transpose(-1, -2),
    "permute": lambda t: t.permute(2, 0, 1),
    "permute_tuple": lambda t: t.permute((1, 2, 0)),
    "T_2d": lambda t: t.reshape(6, 4).T,
    "unsqueeze": lambda t: t.unsqueeze(1),
    "unsqueeze_neg": lambda t: t.unsqueeze(-1),
    "squeeze_all": lambda t: t.unsqueeze(0).unsqueeze(3).squeeze(),
    "squeeze_dim": lambda t: t.unsqueeze(1).squeeze(1),
    "squeeze_not_one": lambda t: t.squeeze(0),  # size 2: unchanged, as torch
    "expand": lambda t: t[:, :1, :].expand(2, 3, 4),
    "expand_-1": lambda t: t[:1].expand(5, -1, -1),
    "expand_new_dims": lambda t: t[0, 0].expand(3, 2, 4),
    "broadcast_to": lambda t: t[:, :1].broadcast_to((2, 3, 4)),
    "clone": lambda t: t.clone(),
    "narrow": lambda t: t.narrow(2, 1, 2),
    "narrow_neg_start": lambda t: t.narrow(-1, -3, 3),
    "narrow_empty": lambda t: t.narrow(1, 3, 0),
    "contiguous": lambda t: t.contiguous(),
    "contiguous_of_transpose": lambda t: t.transpose(0, 2).contiguous(),
}


@pytest.mark.parametrize("name", SAME_CALL)
def test_view_like_ops_match_torch(name, device, check_op, check_grad):
    """Each op on a (2, 3, 4) input: same values, and the gradient lands where torch puts it."""
    fn = SAME_CALL[name]
    check_op(fn, fn, [_x((2, 3, 4))], device)
    check_grad(fn, [_x((2, 3, 4))], device)


@settings(max_examples=20, deadline=None)
@given(shape=array_shapes(min_dims=1, max_dims=4, max_side=3), data=st.data())
def test_random_permutation_matches_torch(shape, data, device, check_op):
    """Any order of the axes: the backward applies the inverse permutation."""
    order = tuple(data.draw(st.permutations(range(len(shape)))))
    check_op(lambda t: t.permute(*order), lambda t: t.permute(*order), [_x(shape)], device)


@settings(max_examples=20, deadline=None)
@given(shape=array_shapes(min_dims=0, max_dims=3, max_side=3), data=st.data())
def test_random_expand_matches_torch(shape, data, device, check_op):
    """Expand stretches size-1 dims and adds leading ones; the gradient is summed back."""
    target = [n if n != 1 else data.draw(st.integers(1, 3)) for n in shape]
    lead = data.draw(st.lists(st.integers(1, 3), max_size=2))
    size = tuple(lead + target)
    check_op(lambda t: t.expand(size), lambda t: t.expand(size), [_x(shape)], device)


@st.composite
def basic_index(draw, shape):
    """A tuple with, per dim, an int (negative too) or a slice with a positive step."""
    parts = []
    for n in shape:
        if draw(st.booleans()):
            parts.append(draw(st.integers(-n, n - 1)))
        else:
            start = draw(st.none() | st.integers(-n - 1, n + 1))
            stop = draw(st.none() | st.integers(-n - 1, n + 1))
            parts.append(slice(start, stop, draw(st.none() | st.integers(1, 3))))
    return tuple(parts[: draw(st.integers(0, len(parts)))])


@settings(max_examples=25, deadline=None)
@given(shape=array_shapes(min_dims=1, max_dims=3, max_side=4), data=st.data())
def test_random_basic_indexing_matches_torch(shape, data, device, check_op):
    """Random ints and slices (out-of-range bounds clip, as in Python): value and gradient."""
    index = data.draw(basic_index(shape))
    check_op(lambda t: t[index], lambda t: t[index], [_x(shape)], device)


# ---- indexing ---------------------------------------------------------------------------
INDICES = {
    "int": 1,
    "negative_int": -1,
    "slice": slice(1, 3),
    "step_slice": (slice(None), slice(None, None, 2)),
    "int_and_slice": (0, slice(1, None)),
    "ellipsis": (Ellipsis, 1),
    "none": (None, 1),
    "int_array": np.array([2, 0]),
    "int_array_repeats": np.array([0, 0, 2, 0]),
    "int_array_2d": np.array([[0, 1], [1, 1]]),
    "array_on_dim_1": (slice(None), np.array([1, 1, 0])),
    "two_arrays": (np.array([0, 1, 1]), np.array([2, 2, 0])),
    "bool_mask_rows": np.array([True, False, True]),
    "bool_mask_full": "mask",
}


def _torch_index(index):
    if isinstance(index, tuple):
        return tuple(_torch_index(i) for i in index)
    return torch.from_numpy(index) if isinstance(index, np.ndarray) else index


@pytest.mark.parametrize("name", INDICES)
def test_getitem_matches_torch(name, device, check_op, check_grad):
    """Slices, ints, integer arrays (repeats add up), boolean masks: values and gradients."""
    x = _x((3, 4))
    index = INDICES[name]
    if isinstance(index, str):
        index = x > 0
    check_op(lambda t: t[index], lambda t: t[_torch_index(index)], [x], device)
    check_grad(lambda t: t[index], [x], device)


def test_getitem_with_tensor_and_list_indices(device, check_op):
    """An int64 sparkgrad tensor or a Python list works as an index, as in torch."""
    x = _x((5, 2))
    idx = [4, 0, 4]
    check_op(lambda t: t[idx], lambda t: t[idx], [x], device)
    check_op(
        lambda t: t[sg.tensor(idx, device=device)], lambda t: t[torch.tensor(idx)], [x], device
    )


# ---- joining and splitting -------------------------------------------------------------
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_and_stack_match_torch(dim, device, check_op, check_grad):
    """cat joins along an existing dim (sizes may differ there), stack along a new one."""
    a, b, c = _x((2, 3), 1), _x((2, 3), 2), _x((2, 3), 3)
    cat_b = _x((2, 1), 4) if dim != 0 else _x((1, 3), 4)

    def sg_cat(x, y):
        return sg.cat([x, y, x], dim=dim)

    check_op(sg_cat, lambda x, y: torch.cat([x, y, x], dim=dim), [a, cat_b], device)
    check_grad(sg_cat, [a, cat_b], device)

    def sg_stack(x, y, z):
        return sg.stack([x, y, z], dim=dim)

    check_op(sg_stack, lambda x, y, z: torch.stack([x, y, z], dim=dim), [a, b, c], device)
    check_grad(sg_stack, [a, b, c], device)


@pytest.mark.parametrize(
    "size_or_sections,dim", [(2, 0), (3, 1), ([1, 4], 1), ([2, 2, 1], -1), (5, 1), (1, 0)]
)
def test_split_matches_torch(size_or_sections, dim, device, check_op):
    """Equal pieces (the last one smaller) or listed sizes; pieces recombine in backward."""
    x = _x((3, 5))

    def sg_fn(t):
        return sg.cat([p * (i + 1) for i, p in enumerate(t.split(size_or_sections, dim=dim))], dim)

    def t_fn(t):
        return torch.cat(
            [p * (i + 1) for i, p in enumerate(t.split(size_or_sections, dim=dim))], dim
        )

    assert len(sg.tensor(x).split(size_or_sections, dim)) == len(
        torch.tensor(x).split(size_or_sections, dim)
    )
    check_op(sg_fn, t_fn, [x], device)


@pytest.mark.parametrize("chunks,dim", [(2, 0), (3, 1), (4, 1), (5, 1), (2, -1)])
def test_chunk_matches_torch(chunks, dim, device, check_op):
    """chunk(n) gives pieces of ceil(size/n), so possibly fewer than n (torch's rule)."""
    x = _x((4, 5))
    sg_pieces, t_pieces = sg.tensor(x).chunk(chunks, dim), torch.tensor(x).chunk(chunks, dim)
    assert [p.shape for p in sg_pieces] == [tuple(p.shape) for p in t_pieces]
    check_op(
        lambda t: t.chunk(chunks, dim=dim)[-1] * 2,
        lambda t: t.chunk(chunks, dim=dim)[-1] * 2,
        [x],
        device,
    )


# ---- casts, clone, detach --------------------------------------------------------------
def test_float_casts_are_differentiable_and_return_the_input_dtype(device, check_op):
    """float32 -> float64 -> float32: the leaf's gradient is float32 again, as in torch."""

    def fn(t):
        return (t.double() * 3).to(np.float32) + t.to(np.float64).float()

    def t_fn(t):
        return (t.double() * 3).to(torch.float32) + t.to(torch.float64).float()

    out, _ = check_op(fn, t_fn, [_x((2, 3))], device)
    assert out.dtype == np.float32


def test_integer_cast_leaves_the_graph(device):
    """``.long()`` gives int64 values without a graph (integers have no gradient)."""
    x = sg.tensor([1.7, -2.2, 3.0], requires_grad=True, device=device)
    y = x.long()
    assert y.dtype == np.int64 and not y.requires_grad
    np.testing.assert_array_equal(y.numpy(), torch.tensor([1.7, -2.2, 3.0]).long().numpy())


def test_clone_copies_and_detach_shares(device):
    """clone() owns new memory and keeps the graph; detach() shares memory and drops it."""
    x = sg.tensor([1.0, 2.0], requires_grad=True, device=device)
    c, d = x.clone(), x.detach()
    assert c.requires_grad and c.grad_fn is not None
    assert not d.requires_grad and d.grad_fn is None
    with sg.no_grad():
        x.array[0] = 5.0
    assert d.to("cpu").numpy()[0] == 5.0  # shares memory, as torch.detach
    assert c.detach().to("cpu").numpy()[0] == 1.0  # a real copy


@pytest.mark.parametrize(
    "args", [(0, 0, 3), (1, 2, 2), (0, 2, 1), (3, 0, 1), (-4, 0, 1), (1, 4, 0), (1, -5, 1)]
)
def test_narrow_checks_like_torch(args):
    """Out-of-range dims and slices raise torch's exception types and messages."""
    x = _x((2, 4))
    try:
        want = torch.tensor(x).narrow(*args).numpy()
    except Exception as theirs:
        with pytest.raises(type(theirs)) as ours:
            sg.tensor(x).narrow(*args)
        assert str(ours.value) == str(theirs)
    else:
        np.testing.assert_array_equal(sg.tensor(x).narrow(*args).numpy(), want)


def test_narrow_is_a_view_and_contiguous_copies_only_when_needed():
    """As torch: writing into narrow() changes the base; contiguous() of a contiguous
    tensor is the tensor itself, of a transpose a row-major copy."""
    x, t = sg.arange(12.0).reshape(3, 4), torch.arange(12.0).reshape(3, 4)
    for lib_x in (x, t):
        lib_x.narrow(1, 1, 2).mul_(10)
    np.testing.assert_array_equal(x.numpy(), t.numpy())
    assert x.contiguous() is x and t.contiguous() is t
    xt = x.t().contiguous()
    assert xt.is_contiguous() and not x.t().is_contiguous()
    xt[0, 0] = -1.0
    assert x[0, 0].item() == 0.0  # a copy: the base is untouched

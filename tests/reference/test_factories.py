"""Making tensors: ranges, the identity, ``*_like``, random draws, and the
``dtype=``/``device=`` keywords every factory takes.

The truth is PyTorch itself. ``linspace`` and ``logspace`` are compared *bit for bit*: what
was found is that torch computes linspace from both ends (``start + step·i`` for the first
half, ``end - step·(steps-1-i)`` for the second), in the output dtype, with the multiply and
add fused into one rounding (an FMA); logspace's exponent is unfused and its power is the C
library's ``pow``. Without the FMA about one float32 value in five is one ulp off; with it
none is (float32, float64, float16 and int64 alike). ``arange`` differs by design in the last
bit at most (torch's SIMD loop restarts ``start + i·step`` every 8 values), and is checked
to that bound.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sparkgrad as sg
from sparkgrad.errors import GradError

FAST = settings(max_examples=40, deadline=None)
DTYPES = [  # (sparkgrad, torch)
    (sg.float32, torch.float32),
    (sg.float64, torch.float64),
    (sg.float16, torch.float16),
    (sg.int64, torch.int64),
    (sg.int32, torch.int32),
]
FLOAT_DTYPES = DTYPES[:3]
ENDPOINTS = st.floats(-1e4, 1e4, allow_nan=False) | st.integers(-100, 100).map(float)


def _same(got, want):
    """Same dtype, shape and bits (NaN equal to NaN)."""
    want = want.numpy()
    assert got.dtype == want.dtype, f"dtype {got.dtype} != {want.dtype}"
    np.testing.assert_array_equal(got.numpy(), want)


# ---- linspace ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtypes", DTYPES, ids=lambda d: str(d[1]))
@FAST
@given(start=ENDPOINTS, end=ENDPOINTS, steps=st.integers(0, 600))
def test_linspace_is_bitwise_torch(dtypes, start, end, steps, device):
    """Every value equals torch's exactly, in every dtype, both ends included."""
    sdt, tdt = dtypes
    if sdt().dtype.kind in "iu":
        start, end = float(int(start)) % 1000, float(int(end)) % 1000
    _same(
        sg.linspace(start, end, steps, dtype=sdt, device=device),
        torch.linspace(start, end, steps, dtype=tdt),
    )


@pytest.mark.parametrize("steps", [1, 2, 3, 8, 17, 32768, 32769, 1_000_003])
def test_linspace_edges_and_long_ranges(steps):
    """steps=1 is [start]; past torch's parallel grain (32768) nothing changes either."""
    for sdt, tdt in FLOAT_DTYPES[:2]:
        _same(
            sg.linspace(-3.7, 11.1, steps, dtype=sdt), torch.linspace(-3.7, 11.1, steps, dtype=tdt)
        )
        _same(sg.linspace(5, -2, steps, dtype=sdt), torch.linspace(5, -2, steps, dtype=tdt))


def test_linspace_defaults_and_errors():
    """Default dtype even for integer ends; steps must be a non-negative int (torch's errors)."""
    _same(sg.linspace(0, 10, 4), torch.linspace(0, 10, 4))
    _same(sg.linspace(sg.tensor(1.0), sg.tensor(2.0), 3), torch.linspace(1.0, 2.0, 3))
    assert sg.linspace(0, 1, 0).shape == (0,)
    with pytest.raises(RuntimeError, match="number of steps must be non-negative"):
        sg.linspace(0, 1, -1)
    with pytest.raises(TypeError, match="steps"):
        sg.linspace(0, 1, 2.0)
    x = sg.linspace(0, 1, 3, requires_grad=True)
    assert x.requires_grad and x.is_leaf


# ---- logspace ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtypes", DTYPES, ids=lambda d: str(d[1]))
@FAST
@given(
    start=st.floats(-3, 3),
    end=st.floats(-3, 3),
    steps=st.integers(0, 300),
    base=st.sampled_from([10.0, 2.0, np.e, 0.5, 3.3]),
)
def test_logspace_is_bitwise_torch(dtypes, start, end, steps, base, device):
    """base ** exponents, every value equal to torch's."""
    sdt, tdt = dtypes
    if sdt().dtype.kind in "iu":
        start, end = abs(start) * 3, abs(end) * 3
    _same(
        sg.logspace(start, end, steps, base=base, dtype=sdt, device=device),
        torch.logspace(start, end, steps, base=base, dtype=tdt),
    )


def test_logspace_edges():
    """steps=1 uses the unrounded start; overflow is inf and a negative base NaN, silently."""
    for args in [(0.5, 2, 1), (0, 2, 3), (0, 400, 3), (2, 2, 4)]:
        _same(sg.logspace(*args), torch.logspace(*args))
    _same(sg.logspace(0, 1.5, 4, base=-2.0), torch.logspace(0, 1.5, 4, base=-2.0))
    with pytest.raises(RuntimeError, match="non-negative"):
        sg.logspace(0, 1, -2)


# ---- arange ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtypes", FLOAT_DTYPES[:2], ids=lambda d: str(d[1]))
@FAST
@given(
    start=st.floats(-50, 50),
    step=st.floats(0.01, 2) | st.floats(-2, -0.01),
    count=st.integers(0, 300),
    frac=st.floats(0, 0.999),
)
def test_arange_floats_within_one_ulp_of_torch(dtypes, start, step, count, frac, device):
    """Same length and dtype; values within one ulp of the larger end (torch's SIMD blocks)."""
    sdt, tdt = dtypes
    end = start + step * (count + frac)
    got = sg.arange(start, end, step, dtype=sdt, device=device)
    want = torch.arange(start, end, step, dtype=tdt).numpy()
    assert got.dtype == want.dtype and got.shape == want.shape
    ulp = np.spacing(np.asarray(max(abs(start), abs(end)), dtype=want.dtype))
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=ulp)


def test_arange_forms_dtypes_and_errors(device):
    """arange(5) is int64, any float argument gives the default dtype, integer dtypes
    truncate the arguments first; step 0 or the wrong sign are torch's RuntimeErrors."""
    cases = [((5,), {}), ((2, 10, 3), {}), ((5.0,), {}), ((0, 1, 0.25), {}), ((1, 0, -0.25), {})]
    cases += [((0, 5), {"dtype": (sg.float64, torch.float64)})]
    cases += [((0.5, 3), {"dtype": (sg.int64, torch.int64)}), ((10, 0, -3), {})]
    for args, kwargs in cases:
        s_kw = {k: v[0] for k, v in kwargs.items()}
        t_kw = {k: v[1] for k, v in kwargs.items()}
        _same(sg.arange(*args, device=device, **s_kw), torch.arange(*args, **t_kw))
    _same(sg.arange(end=4), torch.arange(end=4))
    with pytest.raises(RuntimeError, match="step must be nonzero"):
        sg.arange(0, 1, 0)
    with pytest.raises(RuntimeError, match="inconsistent with step sign"):
        sg.arange(1, 0, 1)


# ---- eye, full, *_like -------------------------------------------------------------------
def test_eye_matches_torch(device):
    for args, s_kw, t_kw in [
        ((3,), {}, {}),
        ((2, 4), {}, {}),
        ((4, 2), {}, {}),
        ((0,), {}, {}),
        ((3,), {"dtype": sg.long}, {"dtype": torch.long}),
        ((2, 3), {"dtype": sg.bool}, {"dtype": torch.bool}),
    ]:
        _same(sg.eye(*args, device=device, **s_kw), torch.eye(*args, **t_kw))
    assert sg.eye(2, requires_grad=True).requires_grad
    with pytest.raises(RuntimeError, match="n must be greater or equal to 0, got -1"):
        sg.eye(-1)
    with pytest.raises(TypeError, match="must be int"):
        sg.eye(2.0)


@pytest.mark.parametrize("dtypes", DTYPES + [(sg.bool, torch.bool)], ids=lambda d: str(d[1]))
def test_like_factories_follow_input_or_arguments(dtypes, device):
    """Shape, dtype and device of the input unless dtype=/device= say otherwise; full_like
    casts the value to the dtype (2.7 -> 2 for integers), as torch."""
    sdt, tdt = dtypes
    x = sg.zeros(2, 3, dtype=sdt, device=device)
    t = torch.zeros(2, 3, dtype=tdt)
    _same(sg.zeros_like(x), torch.zeros_like(t))
    _same(sg.ones_like(x), torch.ones_like(t))
    _same(sg.full_like(x, 2.7), torch.full_like(t, 2.7))
    _same(sg.full_like(x, 3, dtype=sg.float64), torch.full_like(t, 3, dtype=torch.float64))
    _same(sg.ones_like(x, dtype=sg.int16), torch.ones_like(t, dtype=torch.int16))
    empty = sg.empty_like(x)
    assert empty.shape == (2, 3) and empty.dtype == x.dtype and empty.device == x.device
    assert sg.zeros_like(x, device="cpu").device == "cpu"


def test_full_infers_dtype_from_the_value():
    for value in [True, 3, 2.5, -1]:
        _same(sg.full((2, 2), value), torch.full((2, 2), value))
    _same(sg.full((2,), 1.5, dtype=sg.int64), torch.full((2,), 1.5, dtype=torch.int64))
    _same(sg.full(3, 7.0), torch.full((3,), 7.0))


def test_tensor_infers_dtypes_as_torch():
    """Python floats -> default dtype, ints -> int64, bools -> bool; arrays keep theirs."""
    for data in [[1.5], [1, 2], True, [1, 2.5], 3, 2.5, [[True, False]], []]:
        _same(sg.tensor(data), torch.tensor(data))
    for dtype in (np.float64, np.int32, np.uint8, np.float16):
        a = np.arange(3).astype(dtype)
        _same(sg.tensor(a), torch.tensor(a))
    _same(sg.tensor([1, 2], dtype=sg.float64), torch.tensor([1, 2], dtype=torch.float64))


def test_tensor_copies_its_data():
    a = np.zeros(3, dtype=np.float32)
    t = sg.tensor(a)
    a[0] = 5
    assert t.tolist() == [0.0, 0.0, 0.0]
    src = sg.ones(2)
    copy = sg.tensor(src)
    src.array[0] = 7
    assert copy.tolist() == [1.0, 1.0]


@pytest.mark.parametrize("name", ["zeros", "ones", "empty", "rand", "randn"])
def test_shape_forms_and_negative_sizes(name):
    fn = getattr(sg, name)
    assert fn(2, 3).shape == fn((2, 3)).shape == fn([2, 3]).shape == (2, 3)
    assert fn().shape == ()
    with pytest.raises(RuntimeError, match="negative dimension"):
        fn(2, -1)


@pytest.mark.parametrize("name", ["zeros", "ones", "empty", "rand", "randn"])
@pytest.mark.parametrize(
    "alias,torch_dtype",
    [
        ("float", torch.float),
        ("double", torch.double),
        ("half", torch.half),
        ("float64", torch.float64),
        ("long", torch.long),
        ("int", torch.int),
        ("short", torch.short),
        ("int8", torch.int8),
        ("uint8", torch.uint8),
        ("bool", torch.bool),
    ],
)
def test_factories_accept_dtype_aliases(name, alias, torch_dtype):
    """Every alias gives torch's dtype; sampling an integer dtype is torch's error."""
    sg_fn, t_fn = getattr(sg, name), getattr(torch, name)
    try:
        want = t_fn(2, 3, dtype=torch_dtype)
    except (NotImplementedError, RuntimeError) as exc:
        with pytest.raises(type(exc)):
            sg_fn(2, 3, dtype=getattr(sg, alias))
        return
    got = sg_fn(2, 3, dtype=getattr(sg, alias))
    assert got.dtype == want.numpy().dtype and got.shape == tuple(want.shape)
    if name in ("zeros", "ones"):
        np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_factories_refuse_what_is_not_a_dtype():
    """A torch dtype or a string is not a sparkgrad dtype: a TypeError that says so."""
    with pytest.raises(TypeError, match="expected a dtype"):
        sg.zeros(2, dtype=torch.float32)
    with pytest.raises(TypeError, match="expected a dtype"):
        sg.ones(2, dtype="float32")


@pytest.mark.parametrize(
    "make",
    [
        lambda d: sg.zeros(2, device=d),
        lambda d: sg.full((2,), 1.0, device=d),
        lambda d: sg.arange(3, device=d),
        lambda d: sg.linspace(0, 1, 3, device=d),
        lambda d: sg.eye(2, device=d),
        lambda d: sg.rand(2, device=d),
        lambda d: sg.randint(0, 3, (2,), device=d),
        lambda d: sg.randperm(3, device=d),
        lambda d: sg.tensor([1.0], device=d),
    ],
)
def test_factories_accept_every_device_spelling(make):
    """A string, an sg.device, "cpu:0"; an int means the GPU (torch's error without one)."""
    for d in ["cpu", "cpu:0", sg.device("cpu"), sg.device("cpu", 0), None]:
        assert make(d).device == "cpu"
    if sg.cuda.is_available():
        assert make(0).device == "cuda" and make(sg.device("cuda", 0)).device == "cuda"
    else:
        with pytest.raises(RuntimeError, match="Cannot access accelerator"):
            make(0)
        with pytest.raises(RuntimeError, match="CuPy"):
            make(sg.device("cuda"))


def test_integer_tensors_cannot_require_grad():
    """torch's RuntimeError, for every factory asked for it."""
    for make in [
        lambda: sg.zeros(2, dtype=sg.long, requires_grad=True),
        lambda: sg.arange(3, requires_grad=True),
        lambda: sg.randint(0, 5, (3,), requires_grad=True),
        lambda: sg.eye(2, dtype=sg.int32, requires_grad=True),
    ]:
        with pytest.raises(GradError, match="floating point"):
            make()


# ---- random draws ------------------------------------------------------------------------
def test_randint_forms_and_errors():
    """randint(high, size), randint(low, high, size), size=; torch's error for low >= high."""
    sg.manual_seed(0)
    for args, kwargs, low, high in [
        ((5, (400,)), {}, 0, 5),
        ((-3, 4, (20, 20)), {}, -3, 4),
        ((2, 3), {"size": (50,)}, 2, 3),
        ((7,), {"size": (300,)}, 0, 7),
    ]:
        x = sg.randint(*args, **kwargs)
        t = torch.randint(*args, **kwargs)
        assert x.dtype == t.numpy().dtype and x.shape == tuple(t.shape)
        values = x.numpy()
        assert values.min() >= low and values.max() < high
        assert set(np.unique(values)) == set(range(low, high))  # every value can come up
    assert sg.randint(0, 5, (3,), dtype=sg.float32).dtype == np.float32
    for args in [(5, 3, (3,)), (3, 3, (3,))]:
        with pytest.raises(RuntimeError, match="from=.* >= to="):
            sg.randint(*args)
        with pytest.raises(RuntimeError, match="from=.* >= to="):
            torch.randint(*args)


def test_randperm_is_a_seeded_permutation():
    sg.manual_seed(3)
    a = sg.randperm(50)
    sg.manual_seed(3)
    b = sg.randperm(50)
    assert a.dtype == np.int64 and sorted(a.tolist()) == list(range(50))
    assert a.tolist() == b.tolist() and a.tolist() != list(range(50))
    assert sg.randperm(0).shape == (0,) and sg.randperm(5, dtype=sg.float32).dtype == np.float32
    with pytest.raises(RuntimeError, match="negative dimension"):
        sg.randperm(-1)


@pytest.mark.parametrize("dtypes", FLOAT_DTYPES, ids=lambda d: str(d[1]))
def test_rand_like_randn_like_and_randint_like(dtypes):
    """Shape and dtype of the input; the distributions are the right ones (loose moments)."""
    sdt, tdt = dtypes
    x, t = sg.zeros(100, 100, dtype=sdt), torch.zeros(100, 100, dtype=tdt)
    u, n = sg.rand_like(x), sg.randn_like(x)
    for got, want in [(u, torch.rand_like(t)), (n, torch.randn_like(t))]:
        assert got.dtype == want.numpy().dtype and got.shape == tuple(want.shape)
    values = u.numpy().astype(np.float64)
    assert 0 <= values.min() and values.max() < 1 and abs(values.mean() - 0.5) < 0.02
    normal = n.numpy().astype(np.float64)
    assert abs(normal.mean()) < 0.05 and abs(normal.std() - 1) < 0.05
    r = sg.randint_like(x, 2, 5)
    assert r.dtype == sdt and set(np.unique(r.numpy())) == {2, 3, 4}
    assert set(np.unique(sg.randint_like(x, 3).numpy())) == {0, 1, 2}


def test_sampling_integer_dtypes_is_torch_error():
    """rand/randn into an integer dtype is torch's NotImplementedError, not silent zeros."""
    for fn in ("rand_like", "randn_like"):
        with pytest.raises(NotImplementedError):
            getattr(torch, fn)(torch.zeros(2, dtype=torch.long))
        with pytest.raises(NotImplementedError):
            getattr(sg, fn)(sg.zeros(2, dtype=sg.long))
    ints = sg.randint_like(sg.zeros(3, dtype=sg.int32), 10)
    assert ints.dtype == np.int32


@pytest.mark.parametrize("dtype", ["f8", "f4", "f2", "i8", "i4", "u1", "bool"])
def test_from_numpy_shares_memory_and_keeps_the_dtype(dtype):
    a = np.arange(6).reshape(2, 3).astype(dtype)
    ours, theirs = sg.from_numpy(a), torch.from_numpy(a)
    assert str(ours.dtype) == str(theirs.dtype).removeprefix("torch.")
    a[0, 0] = 1  # both see the write: no copy was made
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    ours[1, 1] = 0  # and a write through the tensor shows in the array
    assert a[1, 1] == 0


@pytest.mark.parametrize("bad", [[1.0, 2.0], np.array(["a"]), np.array([None])])
def test_from_numpy_refuses_what_torch_refuses(bad):
    with pytest.raises(TypeError) as theirs:
        torch.from_numpy(bad)
    with pytest.raises(TypeError) as ours:
        sg.from_numpy(bad)
    assert str(ours.value) == str(theirs.value)


def test_as_tensor_copies_only_when_it_must():
    a = np.ones(3, dtype=np.float32)
    for lib in (sg, torch):
        shared, converted = lib.as_tensor(a), lib.as_tensor(a, dtype=lib.float64)
        a[0] = 7
        assert shared[0].item() == 7 and converted[0].item() == 1, lib
        a[0] = 1
        t = lib.ones(2, requires_grad=True)
        assert lib.as_tensor(t) is t and lib.as_tensor(t, dtype=lib.float32) is t
        assert lib.as_tensor(t, dtype=lib.float64).grad_fn is not None  # a converted view of t
        assert lib.as_tensor([1, 2]).dtype == lib.int64
        assert lib.as_tensor([1.5]).dtype == lib.float32
        assert lib.as_tensor([1.5], dtype=lib.float64).dtype == lib.float64
        assert lib.is_tensor(t) and not lib.is_tensor(a) and lib.numel(lib.ones(2, 3)) == 6

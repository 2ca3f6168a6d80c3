"""What you can *do* with a :class:`~sparkgrad.autodiff.tensor.Tensor`, listed in one class.

``Tensor`` inherits :class:`TensorMethods`, so every operator and method is found here
by name (``a + b`` is ``__add__ = op("add")``, ``x.relu()`` is ``relu = op("relu")``):
each forwards to the op of the same name in :mod:`sparkgrad.autodiff.functional`, where
forward and backward live. The in-place updates (``x += y``, ``x[0] = 1``,
``x.add_(y)``) forward to :mod:`sparkgrad.autodiff.inplace`, which keeps PyTorch's rules.

``functional`` imports ``tensor``, so this file must not import ``functional`` when it is
loaded: each entry is a small descriptor that looks its function up at its first use
(:class:`Forward`), after which it is a plain bound method.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import MethodType
from typing import Any


class Forward:
    """A method made at its first use by ``make()`` (see the module docstring)."""

    __slots__ = ("fn", "make")

    def __init__(self, make: Callable[[], Callable]) -> None:
        self.make, self.fn = make, None

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if self.fn is None:
            self.fn = self.make()
        return self.fn if obj is None else MethodType(self.fn, obj)


def _module(name: str) -> Any:
    return importlib.import_module(f"sparkgrad.autodiff.{name}")


def op(name: str) -> Forward:
    """``x.name(*args)`` is ``functional.name(x, *args)``."""
    return Forward(lambda: getattr(_module("functional"), name))


def reflected(name: str) -> Forward:
    """``other <op> x`` (``__radd__`` ...) is ``functional.name(other, x)``."""

    def make() -> Callable:
        fn = getattr(_module("functional"), name)

        def method(self: Any, other: Any) -> Any:
            return fn(other, self)

        return method

    return Forward(make)


def in_place(name: str) -> Forward:
    """``x.name(...)`` is ``inplace.name(x, ...)``."""
    return Forward(lambda: getattr(_module("inplace"), name))


def in_place_of(name: str, method: str) -> Forward:
    """``x.method(...)``: ``functional.name`` computed, then written into ``x`` in place."""
    return Forward(
        lambda: _module("inplace").inplace_of(getattr(_module("functional"), name), method)
    )


def _new(factory: str) -> Callable:
    """``x.new_zeros(shape)`` and friends: same dtype and device as ``x`` unless told."""

    def method(self: Any, *args: Any, dtype: Any = None, device: Any = None, **kw: Any) -> Any:
        make = getattr(_module("factories"), factory)
        return make(*args, dtype=dtype or self.dtype, device=device or self.device, **kw)

    method.__name__ = "new_" + factory
    return method


def _new_tensor(self: Any, data: Any, dtype: Any = None, device: Any = None, **kw: Any) -> Any:
    make = _module("factories").tensor
    return make(data, dtype=dtype or self.dtype, device=device or self.device, **kw)


class TensorMethods:
    """Operators and methods of ``Tensor``; each forwards to the op of the same name."""

    __slots__ = ()  # Tensor declares its own slots
    __hash__ = object.__hash__  # defining __eq__ below would otherwise unset it

    # -- ops: sparkgrad.autodiff.functional --------------------------------------------------
    __add__ = op("add")
    __radd__ = reflected("add")
    __sub__ = op("sub")
    __rsub__ = reflected("sub")
    __mul__ = op("mul")
    __rmul__ = reflected("mul")
    __truediv__ = op("div")
    __rtruediv__ = reflected("div")
    __pow__ = op("pow")
    __rpow__ = reflected("pow")
    __matmul__ = op("matmul")
    __rmatmul__ = reflected("matmul")
    __neg__ = op("neg")
    __getitem__ = op("getitem")
    __lt__ = op("lt")
    __le__ = op("le")
    __gt__ = op("gt")
    __ge__ = op("ge")
    __eq__ = op("eq")
    __ne__ = op("ne")
    eq = op("eq")
    ne = op("ne")
    lt = op("lt")
    le = op("le")
    gt = op("gt")
    ge = op("ge")
    equal = op("equal")
    allclose = op("allclose")
    isclose = op("isclose")
    all = op("all")
    any = op("any")
    add = op("add")
    sub = op("sub")
    mul = op("mul")
    div = op("div")
    pow = op("pow")
    matmul = op("matmul")
    mm = op("mm")
    bmm = op("bmm")
    dot = op("dot")
    neg = op("neg")
    exp = op("exp")
    log = op("log")
    sqrt = op("sqrt")
    tanh = op("tanh")
    sigmoid = op("sigmoid")
    relu = op("relu")
    gelu = op("gelu")
    abs = op("abs")
    sin = op("sin")
    cos = op("cos")
    tan = op("tan")
    asin = op("asin")
    acos = op("acos")
    atan = op("atan")
    sinh = op("sinh")
    cosh = op("cosh")
    asinh = op("asinh")
    acosh = op("acosh")
    atanh = op("atanh")
    arcsin = op("arcsin")
    arccos = op("arccos")
    arctan = op("arctan")
    arcsinh = op("arcsinh")
    arccosh = op("arccosh")
    arctanh = op("arctanh")
    atan2 = op("atan2")
    arctan2 = op("arctan2")
    exp2 = op("exp2")
    expm1 = op("expm1")
    log2 = op("log2")
    log10 = op("log10")
    log1p = op("log1p")
    rsqrt = op("rsqrt")
    reciprocal = op("reciprocal")
    square = op("square")
    erf = op("erf")
    sign = op("sign")
    floor = op("floor")
    ceil = op("ceil")
    round = op("round")
    trunc = op("trunc")
    fix = op("fix")
    tril = op("tril")
    triu = op("triu")
    clamp = op("clamp")
    clip = op("clamp")
    maximum = op("maximum")
    minimum = op("minimum")
    sum = op("sum")
    mean = op("mean")
    max = op("max")
    min = op("min")
    amax = op("amax")
    amin = op("amin")
    norm = op("norm")
    var = op("var")
    std = op("std")
    argmax = op("argmax")
    argmin = op("argmin")
    reshape = op("reshape")
    view = op("reshape")
    view_as = op("view_as")
    reshape_as = op("view_as")
    expand_as = op("expand_as")
    t = op("t")
    gather = op("gather")
    narrow = op("narrow")
    contiguous = op("contiguous")
    masked_fill = op("masked_fill")
    flatten = op("flatten")
    permute = op("permute")
    transpose = op("transpose")
    squeeze = op("squeeze")
    unsqueeze = op("unsqueeze")
    expand = op("expand")
    broadcast_to = op("broadcast_to")
    split = op("split")
    chunk = op("chunk")
    softmax = op("softmax")
    log_softmax = op("log_softmax")
    new_zeros = _new("zeros")
    new_ones = _new("ones")
    new_empty = _new("empty")
    new_full = _new("full")
    new_tensor = _new_tensor

    # -- in-place updates: sparkgrad.autodiff.inplace ----------------------------------------
    __setitem__ = in_place("setitem")
    __iadd__ = in_place("add_")
    __isub__ = in_place("sub_")
    __imul__ = in_place_of("mul", "__imul__")
    __itruediv__ = in_place_of("div", "__itruediv__")
    __ipow__ = in_place_of("pow", "__ipow__")
    add_ = in_place("add_")
    sub_ = in_place("sub_")
    mul_ = in_place_of("mul", "mul_")
    div_ = in_place_of("div", "div_")
    pow_ = in_place_of("pow", "pow_")
    neg_ = in_place_of("neg", "neg_")
    exp_ = in_place_of("exp", "exp_")
    log_ = in_place_of("log", "log_")
    sqrt_ = in_place_of("sqrt", "sqrt_")
    abs_ = in_place_of("abs", "abs_")
    relu_ = in_place_of("relu", "relu_")
    sigmoid_ = in_place_of("sigmoid", "sigmoid_")
    tanh_ = in_place_of("tanh", "tanh_")
    sin_ = in_place_of("sin", "sin_")
    cos_ = in_place_of("cos", "cos_")
    floor_ = in_place_of("floor", "floor_")
    ceil_ = in_place_of("ceil", "ceil_")
    round_ = in_place_of("round", "round_")
    trunc_ = in_place_of("trunc", "trunc_")
    reciprocal_ = in_place_of("reciprocal", "reciprocal_")
    square_ = in_place_of("square", "square_")
    sign_ = in_place_of("sign", "sign_")
    tril_ = in_place_of("tril", "tril_")
    triu_ = in_place_of("triu", "triu_")
    log1p_ = in_place_of("log1p", "log1p_")
    expm1_ = in_place_of("expm1", "expm1_")
    clamp_ = in_place_of("clamp", "clamp_")
    clip_ = in_place_of("clamp", "clip_")
    masked_fill_ = in_place_of("masked_fill", "masked_fill_")
    addcmul_ = in_place("addcmul_")
    addcdiv_ = in_place("addcdiv_")
    fill_ = in_place("fill_")
    zero_ = in_place("zero_")
    copy_ = in_place("copy_")
    uniform_ = in_place("uniform_")
    normal_ = in_place("normal_")

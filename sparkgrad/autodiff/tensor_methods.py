"""Operators and methods of :class:`Tensor`, each forwarding to :mod:`.functional`.

Kept apart from ``tensor.py`` so that file stays about what a tensor *is*; this one is
the list of what you can *do* with it (``a + b``, ``x.relu()``, ``x.sum(dim=1)`` ...).
:data:`IN_PLACE` lists the updates that change a tensor itself (``x += y``, ``x[0] = 1``,
``x.add_(y)``): they go through :mod:`.inplace`, which keeps PyTorch's rules.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff import inplace as I


def _reflected(fn: Any) -> Any:
    def method(self: Any, other: Any) -> Any:
        return fn(other, self)

    return method


def _new(factory: Any) -> Any:
    """``x.new_zeros(shape)`` and friends: same dtype and device as ``x`` unless told."""

    def method(self: Any, *args: Any, dtype: Any = None, device: Any = None, **kw: Any) -> Any:
        from sparkgrad.autodiff import factories

        out = getattr(factories, factory)(
            *args, dtype=dtype or self.dtype, device=device or self.device, **kw
        )
        return out

    method.__name__ = "new_" + factory
    return method


def _new_tensor(self: Any, data: Any, dtype: Any = None, device: Any = None, **kw: Any) -> Any:
    from sparkgrad.autodiff.factories import tensor

    return tensor(data, dtype=dtype or self.dtype, device=device or self.device, **kw)


METHODS = {
    "__add__": F.add,
    "__radd__": _reflected(F.add),
    "__sub__": F.sub,
    "__rsub__": _reflected(F.sub),
    "__mul__": F.mul,
    "__rmul__": _reflected(F.mul),
    "__truediv__": F.div,
    "__rtruediv__": _reflected(F.div),
    "__pow__": F.pow,
    "__rpow__": _reflected(F.pow),
    "__matmul__": F.matmul,
    "__rmatmul__": _reflected(F.matmul),
    "__neg__": F.neg,
    "__getitem__": F.getitem,
    "__lt__": F.lt,
    "__le__": F.le,
    "__gt__": F.gt,
    "__ge__": F.ge,
    "__eq__": F.eq,
    "__ne__": F.ne,
    "eq": F.eq,
    "ne": F.ne,
    "lt": F.lt,
    "le": F.le,
    "gt": F.gt,
    "ge": F.ge,
    "equal": F.equal,
    "allclose": F.allclose,
    "isclose": F.isclose,
    "all": F.all,
    "any": F.any,
    "add": F.add,
    "sub": F.sub,
    "mul": F.mul,
    "div": F.div,
    "pow": F.pow,
    "matmul": F.matmul,
    "mm": F.mm,
    "bmm": F.bmm,
    "dot": F.dot,
    "neg": F.neg,
    "exp": F.exp,
    "log": F.log,
    "sqrt": F.sqrt,
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
    "relu": F.relu,
    "gelu": F.gelu,
    "abs": F.abs,
    "sin": F.sin,
    "cos": F.cos,
    "tan": F.tan,
    "asin": F.asin,
    "acos": F.acos,
    "atan": F.atan,
    "sinh": F.sinh,
    "cosh": F.cosh,
    "asinh": F.asinh,
    "acosh": F.acosh,
    "atanh": F.atanh,
    "arcsin": F.arcsin,
    "arccos": F.arccos,
    "arctan": F.arctan,
    "arcsinh": F.arcsinh,
    "arccosh": F.arccosh,
    "arctanh": F.arctanh,
    "atan2": F.atan2,
    "arctan2": F.arctan2,
    "exp2": F.exp2,
    "expm1": F.expm1,
    "log2": F.log2,
    "log10": F.log10,
    "log1p": F.log1p,
    "rsqrt": F.rsqrt,
    "reciprocal": F.reciprocal,
    "square": F.square,
    "erf": F.erf,
    "sign": F.sign,
    "floor": F.floor,
    "ceil": F.ceil,
    "round": F.round,
    "trunc": F.trunc,
    "fix": F.fix,
    "tril": F.tril,
    "triu": F.triu,
    "clamp": F.clamp,
    "clip": F.clamp,
    "maximum": F.maximum,
    "minimum": F.minimum,
    "sum": F.sum,
    "mean": F.mean,
    "max": F.max,
    "min": F.min,
    "amax": F.amax,
    "amin": F.amin,
    "norm": F.norm,
    "var": F.var,
    "std": F.std,
    "argmax": F.argmax,
    "argmin": F.argmin,
    "reshape": F.reshape,
    "view": F.reshape,
    "view_as": F.view_as,
    "reshape_as": F.view_as,
    "expand_as": F.expand_as,
    "t": F.t,
    "gather": F.gather,
    "narrow": F.narrow,
    "contiguous": F.contiguous,
    "masked_fill": F.masked_fill,
    "flatten": F.flatten,
    "permute": F.permute,
    "transpose": F.transpose,
    "squeeze": F.squeeze,
    "unsqueeze": F.unsqueeze,
    "expand": F.expand,
    "broadcast_to": F.broadcast_to,
    "split": F.split,
    "chunk": F.chunk,
    "softmax": F.softmax,
    "log_softmax": F.log_softmax,
    "new_zeros": _new("zeros"),
    "new_ones": _new("ones"),
    "new_empty": _new("empty"),
    "new_full": _new("full"),
    "new_tensor": _new_tensor,
}

IN_PLACE = {
    "__setitem__": I.setitem,
    "__iadd__": I.add_,
    "__isub__": I.sub_,
    "__imul__": I.inplace_of(F.mul, "__imul__"),
    "__itruediv__": I.inplace_of(F.div, "__itruediv__"),
    "__ipow__": I.inplace_of(F.pow, "__ipow__"),
    "add_": I.add_,
    "sub_": I.sub_,
    "mul_": I.inplace_of(F.mul, "mul_"),
    "div_": I.inplace_of(F.div, "div_"),
    "pow_": I.inplace_of(F.pow, "pow_"),
    "neg_": I.inplace_of(F.neg, "neg_"),
    "exp_": I.inplace_of(F.exp, "exp_"),
    "log_": I.inplace_of(F.log, "log_"),
    "sqrt_": I.inplace_of(F.sqrt, "sqrt_"),
    "abs_": I.inplace_of(F.abs, "abs_"),
    "relu_": I.inplace_of(F.relu, "relu_"),
    "sigmoid_": I.inplace_of(F.sigmoid, "sigmoid_"),
    "tanh_": I.inplace_of(F.tanh, "tanh_"),
    "sin_": I.inplace_of(F.sin, "sin_"),
    "cos_": I.inplace_of(F.cos, "cos_"),
    "floor_": I.inplace_of(F.floor, "floor_"),
    "ceil_": I.inplace_of(F.ceil, "ceil_"),
    "round_": I.inplace_of(F.round, "round_"),
    "trunc_": I.inplace_of(F.trunc, "trunc_"),
    "reciprocal_": I.inplace_of(F.reciprocal, "reciprocal_"),
    "square_": I.inplace_of(F.square, "square_"),
    "sign_": I.inplace_of(F.sign, "sign_"),
    "tril_": I.inplace_of(F.tril, "tril_"),
    "triu_": I.inplace_of(F.triu, "triu_"),
    "log1p_": I.inplace_of(F.log1p, "log1p_"),
    "expm1_": I.inplace_of(F.expm1, "expm1_"),
    "clamp_": I.inplace_of(F.clamp, "clamp_"),
    "clip_": I.inplace_of(F.clamp, "clip_"),
    "masked_fill_": I.inplace_of(F.masked_fill, "masked_fill_"),
    "addcmul_": I.addcmul_,
    "addcdiv_": I.addcdiv_,
    "fill_": I.fill_,
    "zero_": I.zero_,
    "copy_": I.copy_,
    "uniform_": I.uniform_,
    "normal_": I.normal_,
}


def install(cls: type) -> None:
    """Attach every entry of :data:`METHODS` and :data:`IN_PLACE` to the Tensor class."""
    for name, fn in {**METHODS, **IN_PLACE}.items():
        setattr(cls, name, fn)

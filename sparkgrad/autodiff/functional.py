"""The functional API: every op as a plain function, with PyTorch's names and arguments.

Imported as ``import sparkgrad.nn.functional as F`` (or ``sparkgrad.autodiff.functional``).
Reductions accept NumPy's spelling (``axis``, ``keepdims``) and PyTorch's (``dim``,
``keepdim``); this module is where the two meet, so the ops themselves see one spelling.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import device_of, is_floating
from sparkgrad.autodiff.functional_compare import *  # noqa: F403 - eq, lt, allclose ...
from sparkgrad.autodiff.functional_conv import *  # noqa: F403 - conv2d, pooling
from sparkgrad.autodiff.functional_loss import *  # noqa: F403 - cross_entropy, l1_loss ...
from sparkgrad.autodiff.functional_math import *  # noqa: F403 - sin, log1p, floor, tril ...
from sparkgrad.autodiff.functional_nn import *  # noqa: F403 - linear, softmax, losses ...
from sparkgrad.autodiff.functional_reduction import *  # noqa: F403 - sum, mean, max ...
from sparkgrad.autodiff.grad_mode import is_grad_enabled
from sparkgrad.autodiff.inplace import raw_index
from sparkgrad.autodiff.ops import arithmetic as ar
from sparkgrad.autodiff.ops import pointwise as pw
from sparkgrad.autodiff.ops import shape as sh
from sparkgrad.autodiff.ops.promotion import apply_binary, floating
from sparkgrad.autodiff.spelling import pick
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import DeviceError, ShapeError

Operand = Tensor | float | int | Any


# ---- arithmetic ---------------------------------------------------------------------
def add(a: Operand, b: Operand) -> Tensor:
    return apply_binary(ar.Add, a, b, "+")


def sub(a: Operand, b: Operand) -> Tensor:
    return apply_binary(ar.Sub, a, b, "-")


def mul(a: Operand, b: Operand) -> Tensor:
    return apply_binary(ar.Mul, a, b, "*")


def div(a: Operand, b: Operand) -> Tensor:
    return apply_binary(ar.Div, a, b, "/")


def pow(a: Operand, b: Operand) -> Tensor:  # noqa: A001 - PyTorch's name
    return apply_binary(ar.Pow, a, b, "**")


def neg(a: Tensor) -> Tensor:
    return ar.Neg.apply(a)


def matmul(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002 - PyTorch's names
    return ar.MatMul.apply(input, other)


def mm(input: Tensor, mat2: Tensor) -> Tensor:  # noqa: A002
    """Matrix product of two 2-D tensors (``matmul`` without broadcasting)."""
    if input.ndim != 2 or mat2.ndim != 2:
        raise ShapeError(
            f"mm: expected two 2-D tensors, found shapes {input.shape} and {mat2.shape}"
        )
    return ar.MatMul.apply(input, mat2)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:  # noqa: A002
    """Batched matrix product ``(b, n, m) @ (b, m, p) -> (b, n, p)``, no broadcasting."""
    for name, t in (("batch1", input), ("batch2", mat2)):
        if t.ndim != 3:
            raise RuntimeError(f"{name} must be a 3D tensor")
    if input.shape[0] != mat2.shape[0] or input.shape[2] != mat2.shape[1]:
        raise RuntimeError(
            f"Expected size for first two dimensions of batch2 tensor to be: "
            f"[{input.shape[0]}, {input.shape[2]}] but got: [{mat2.shape[0]}, {mat2.shape[1]}]."
        )
    return ar.MatMul.apply(input, mat2)


def dot(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002
    """Inner product of two 1-D tensors of the same length and dtype (a 0-d tensor)."""
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.ndim}D and {other.ndim}D tensors")
    if input.shape[0] != other.shape[0]:
        n, m = input.shape[0], other.shape[0]
        raise RuntimeError(
            f"inconsistent tensor size, expected tensor [{n}] and src [{m}] to have the same "
            f"number of elements, but got {n} and {m} elements respectively"
        )
    if input.dtype != other.dtype:
        raise RuntimeError(
            "dot : expected both vectors to have same dtype, but found "
            f"{_torch_name(input.dtype)} and {_torch_name(other.dtype)}"
        )
    return ar.Dot.apply(input, other)


def _torch_name(dtype: Any) -> str:
    """PyTorch's short type name of a dtype in messages: ``Float``, ``Double``, ``Long``."""
    names = {"float32": "Float", "float64": "Double", "float16": "Half", "int64": "Long"}
    return names.get(np.dtype(dtype).name, np.dtype(dtype).name)


# ---- element-wise -------------------------------------------------------------------
def exp(x: Tensor) -> Tensor:
    return pw.Exp.apply(floating(x))


def log(x: Tensor) -> Tensor:
    return pw.Log.apply(floating(x))


def sqrt(x: Tensor) -> Tensor:
    return pw.Sqrt.apply(floating(x))


def tanh(x: Tensor) -> Tensor:
    return pw.Tanh.apply(floating(x))


def sigmoid(x: Tensor) -> Tensor:
    return pw.Sigmoid.apply(floating(x))


def relu(x: Tensor, inplace: bool = False) -> Tensor:
    return x.relu_() if inplace else pw.ReLU.apply(x)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate must be 'none' or 'tanh', found {approximate!r}")
    return pw.GELU.apply(x, approximate=approximate)


def abs(x: Tensor) -> Tensor:  # noqa: A001 - PyTorch's name
    return pw.Abs.apply(x)


def clamp(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:  # noqa: A002
    return pw.Clamp.apply(x, lo=min, hi=max)


clip = clamp


def maximum(a: Operand, b: Operand) -> Tensor:
    return apply_binary(pw.Maximum, a, b, "maximum")


def minimum(a: Operand, b: Operand) -> Tensor:
    return apply_binary(pw.Minimum, a, b, "minimum")


def where(condition: Any, a: Operand, b: Operand) -> Tensor:
    cond = condition.array if isinstance(condition, Tensor) else condition
    return pw.Where.apply(cond, a, b)


# ---- shapes -------------------------------------------------------------------------
def _shape_args(shape: Sequence[Any]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def reshape(x: Tensor, *shape: Any) -> Tensor:
    return sh.Reshape.apply(x, shape=_shape_args(shape))


view = reshape


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    nd = x.ndim
    start, end = start_dim % nd if nd else 0, end_dim % nd if nd else 0
    shape = x.shape[:start] + (-1,) + x.shape[end + 1 :]
    return reshape(x, shape)


def permute(x: Tensor, *axes: Any) -> Tensor:
    return sh.Permute.apply(x, axes=_shape_args(axes))


def transpose(x: Tensor, dim0: int = -2, dim1: int = -1) -> Tensor:
    axes = list(range(x.ndim))
    axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
    return permute(x, axes)


def squeeze(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    axis = pick(axis, dim, None)
    if axis is None:
        return reshape(x, tuple(n for n in x.shape if n != 1))
    axis %= x.ndim
    if x.shape[axis] != 1:
        return x
    return reshape(x, x.shape[:axis] + x.shape[axis + 1 :])


def unsqueeze(x: Tensor, axis: int | None = None, *, dim: int | None = None) -> Tensor:
    axis = pick(axis, dim, None)
    axis = axis % (x.ndim + 1)
    return reshape(x, x.shape[:axis] + (1,) + x.shape[axis:])


def expand(x: Tensor, *shape: Any) -> Tensor:
    """Broadcast to ``shape``; ``-1`` keeps that dimension (as ``torch.Tensor.expand``)."""
    target = list(_shape_args(shape))
    offset = len(target) - x.ndim
    for i, n in enumerate(target):
        if n == -1:
            target[i] = x.shape[i - offset]
    return sh.Expand.apply(x, shape=tuple(target))


def broadcast_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    return sh.Expand.apply(x, shape=tuple(shape))


def view_as(x: Tensor, other: Tensor) -> Tensor:
    return reshape(x, other.shape)


def expand_as(x: Tensor, other: Tensor) -> Tensor:
    return sh.Expand.apply(x, shape=tuple(other.shape))


def t(x: Tensor) -> Tensor:
    """Transpose of a matrix (0-D and 1-D tensors are returned as they are)."""
    if x.ndim > 2:
        raise ShapeError(f"t() expects a tensor with <= 2 dimensions, but self is {x.ndim}D")
    return x if x.ndim < 2 else permute(x, (1, 0))


def getitem(x: Tensor, index: Any) -> Tensor:
    """``x[index]``: slices, integers, integer arrays/tensors, boolean masks."""
    return sh.GetItem.apply(x, index=raw_index(index, x.device))


def narrow(input: Tensor, dim: int, start: Any, length: int) -> Tensor:  # noqa: A002
    """``input[..., start:start + length, ...]`` along ``dim``: a view, as ``torch.narrow``.

    ``start`` may be negative (counted from the end) or a 0-d integer tensor; the slice
    must fit inside the dimension (PyTorch raises, where Python slicing would shorten).
    """
    if input.ndim == 0:
        raise RuntimeError("narrow() cannot be applied to a 0-dim tensor.")
    axis = dim % input.ndim if -input.ndim <= dim < input.ndim else None
    if axis is None:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-input.ndim}, "
            f"{input.ndim - 1}], but got {dim})"
        )
    size, start = input.shape[axis], int(start)
    if not -size <= start <= size:
        raise IndexError(f"start out of range (expected to be in range of [{-size}, {size}], "
                         f"but got {start})")  # fmt: skip
    if start < 0:
        start += size
    if length < 0 or start + length > size:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size ({size}).")
    return getitem(input, (slice(None),) * axis + (slice(start, start + length),))


def contiguous(x: Tensor) -> Tensor:
    """``x`` itself if its values lie in row-major order, else a row-major copy (a clone)."""
    return x if x.is_contiguous() else clone(x)


def gather(input: Tensor, dim: int, index: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
    """``out[i][j] = input[i][index[i][j]]`` for ``dim=1`` (and likewise for any dim)."""
    return sh.Gather.apply(input, index.array if isinstance(index, Tensor) else index, axis=dim)


def masked_fill(input: Tensor, mask: Any, value: Any) -> Tensor:  # noqa: A002
    """``value`` where ``mask`` is True, ``input`` elsewhere (``mask`` broadcasts)."""
    cond = mask.array if isinstance(mask, Tensor) else mask
    if getattr(cond, "dtype", None) is not None and cond.dtype != np.bool_:
        raise TypeError(
            f"masked_fill only supports boolean masks, but got mask with dtype {cond.dtype}"
        )
    if isinstance(value, Tensor):
        value = value.array.astype(input.dtype)
    return pw.Where.apply(cond, value, input)


def cat(tensors: Sequence[Tensor], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    return sh.Cat.apply(*tensors, axis=pick(axis, dim, 0))


concatenate = cat


def stack(tensors: Sequence[Tensor], axis: int | None = None, *, dim: int | None = None) -> Tensor:
    return sh.Stack.apply(*tensors, axis=pick(axis, dim, 0))


def split(
    x: Tensor,
    split_size_or_sections: int | Sequence[int],
    axis: int | None = None,
    *,
    dim: int | None = None,
) -> tuple[Tensor, ...]:
    """Pieces of ``x`` along ``axis``: chunks of one size, or the listed sizes (``torch.split``)."""
    axis = pick(axis, dim, 0) % x.ndim
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        sizes = [step] * (n // step) + ([n % step] if n % step else [])
    else:
        sizes = list(split_size_or_sections)
        if builtins.sum(sizes) != n:
            raise ShapeError(f"split sizes {sizes} do not add up to {n} (axis {axis} of {x.shape})")
    pieces, start = [], 0
    for size in sizes:
        index = (slice(None),) * axis + (slice(start, start + size),)
        pieces.append(getitem(x, index))
        start += size
    return tuple(pieces)


def chunk(
    x: Tensor, chunks: int, axis: int | None = None, *, dim: int | None = None
) -> tuple[Tensor, ...]:
    axis = pick(axis, dim, 0)
    n = x.shape[axis]
    return split(x, -(-n // chunks), axis)


def cast(x: Tensor, dtype: Any) -> Tensor:
    """``x`` converted to ``dtype`` (differentiable between float dtypes)."""
    if np.dtype(dtype).name == "bfloat16" and device_of(x.array) == "cuda":
        raise DeviceError(
            "bfloat16 on cuda: CuPy has no bfloat16 arrays (sparkgrad's bfloat16 is NumPy's "
            "ml_dtypes); keep bfloat16 tensors on the cpu or use sg.float16 on cuda"
        )
    if not is_floating(dtype) or not is_grad_enabled():
        return Tensor._wrap(x.array.astype(dtype))
    return sh.Cast.apply(x, dtype=dtype)


def move(x: Tensor, device: str) -> Tensor:
    """``x`` copied to ``device`` (differentiable)."""
    return sh.Move.apply(x, device=device)


def clone(x: Tensor) -> Tensor:
    return sh.Clone.apply(x)

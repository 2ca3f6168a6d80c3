"""Comparisons and truth tests: boolean results, no gradient (``x > 0``, ``sg.allclose``).

Re-exported by :mod:`sparkgrad.autodiff.functional`; ``x == y``, ``x.eq(y)`` and
``sg.eq(x, y)`` are one function each. Like PyTorch, they compare element by element with
broadcasting and give ``bool`` tensors, which are not part of any graph.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import array_module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ShapeError

__all__ = ["eq", "ne", "lt", "le", "gt", "ge", "equal", "allclose", "isclose", "all", "any"]


def _raw(x: Any) -> Any:
    return x.array if isinstance(x, Tensor) else x


def _compare(name: str, a: Any, b: Any) -> Tensor:
    ra, rb = _raw(a), _raw(b)
    try:
        return Tensor._wrap(getattr(array_module(ra, rb), name)(ra, rb))
    except ValueError:
        sa, sb = tuple(getattr(ra, "shape", ())), tuple(getattr(rb, "shape", ()))
        raise ShapeError(f"shapes {sa} and {sb} cannot be broadcast for '{name}'") from None


def eq(input: Any, other: Any) -> Tensor:  # noqa: A002 - PyTorch's name
    return _compare("equal", input, other)


def ne(input: Any, other: Any) -> Tensor:  # noqa: A002
    return _compare("not_equal", input, other)


def lt(input: Any, other: Any) -> Tensor:  # noqa: A002
    return _compare("less", input, other)


def le(input: Any, other: Any) -> Tensor:  # noqa: A002
    return _compare("less_equal", input, other)


def gt(input: Any, other: Any) -> Tensor:  # noqa: A002
    return _compare("greater", input, other)


def ge(input: Any, other: Any) -> Tensor:  # noqa: A002
    return _compare("greater_equal", input, other)


def equal(input: Tensor, other: Tensor) -> bool:  # noqa: A002
    """True when both have the same shape and the same values (``torch.equal``)."""
    a, b = _raw(input), _raw(other)
    return tuple(a.shape) == tuple(b.shape) and bool((a == b).all())


def isclose(
    input: Tensor,  # noqa: A002
    other: Tensor,
    rtol: float = 1e-05,
    atol: float = 1e-08,
    equal_nan: bool = False,
) -> Tensor:
    """``|input - other| <= atol + rtol * |other|`` element by element."""
    a, b = _raw(input), _raw(other)
    return Tensor._wrap(array_module(a, b).isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(
    input: Tensor,  # noqa: A002
    other: Tensor,
    rtol: float = 1e-05,
    atol: float = 1e-08,
    equal_nan: bool = False,
) -> bool:
    return bool(isclose(input, other, rtol, atol, equal_nan).array.all())


def all(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A001, A002
    """Whether every element (along ``dim``) is true."""
    return Tensor._wrap(_raw(input).astype(bool).all(axis=dim, keepdims=keepdim))


def any(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:  # noqa: A001, A002
    """Whether some element (along ``dim``) is true."""
    return Tensor._wrap(_raw(input).astype(bool).any(axis=dim, keepdims=keepdim))

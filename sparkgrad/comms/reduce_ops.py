"""Reduction operators: how two partial results combine into one.

A collective such as ``all_reduce`` combines one array per rank element by element. The
operator is one of :class:`ReduceOp` (PyTorch's names). Algorithms call :func:`combine`
with an *accumulator* and an *incoming* array; the result is written into the
accumulator, so no temporary array is allocated. ``AVG`` is ``SUM`` followed by one
division by the number of ranks at the very end (:func:`finish`), as NCCL does.
"""

from __future__ import annotations

import enum
from typing import Any

import numpy as np

from sparkgrad.errors import CommError


class ReduceOp(enum.Enum):
    """The element-wise operators a reduction can use (``torch.distributed.ReduceOp``)."""

    SUM = "sum"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    AVG = "avg"


_UFUNCS = {
    ReduceOp.SUM: np.add,
    ReduceOp.AVG: np.add,  # summed on the way, divided once in finish()
    ReduceOp.PRODUCT: np.multiply,
    ReduceOp.MIN: np.minimum,
    ReduceOp.MAX: np.maximum,
}


def as_reduce_op(op: Any) -> ReduceOp:
    """Accept a :class:`ReduceOp`, its name (``"sum"``/``"SUM"``) or anything with ``.name``."""
    if isinstance(op, ReduceOp):
        return op
    name = getattr(op, "name", op)
    if isinstance(name, str):
        for member in ReduceOp:
            if name.upper() in (member.name, member.value.upper()):
                return member
    raise CommError(f"expected a reduce op among {[m.name for m in ReduceOp]}, found {op!r}")


def check_op_dtype(op: ReduceOp, dtype: np.dtype) -> None:
    """AVG divides, so it needs a floating (or complex) dtype; say so before any byte moves."""
    floating = np.dtype(dtype).kind in "fc" or np.dtype(dtype).name == "bfloat16"  # ml_dtypes
    if op is ReduceOp.AVG and not floating:
        raise CommError(
            f"ReduceOp.AVG needs a floating dtype, found {np.dtype(dtype)}; "
            "use SUM and divide yourself, or cast to float"
        )


def combine(op: ReduceOp, acc: Any, incoming: Any) -> None:
    """``acc = acc (op) incoming``, in place. Bool SUM/PRODUCT act as OR/AND (as in NCCL)."""
    if acc.dtype == np.bool_ and op in (ReduceOp.SUM, ReduceOp.AVG):
        np.logical_or(acc, incoming, out=acc)
    elif acc.dtype == np.bool_ and op is ReduceOp.PRODUCT:
        np.logical_and(acc, incoming, out=acc)
    else:
        _UFUNCS[op](acc, incoming, out=acc)


def finish(op: ReduceOp, acc: Any, nranks: int) -> None:
    """Last step of a reduction: AVG divides the sum by the number of ranks, in place."""
    if op is ReduceOp.AVG:
        np.divide(acc, nranks, out=acc)

"""Two spellings of one argument: NumPy's ``axis``/``keepdims`` and PyTorch's ``dim``/``keepdim``.

The functional API accepts both; these helpers pick the one that was given, so the ops
themselves only ever see one spelling.
"""

from __future__ import annotations

from typing import Any


def pick(numpy_name: Any, torch_name: Any, default: Any) -> Any:
    """Whichever of the two spellings was given (an error if both, and they differ)."""
    if numpy_name is not None and torch_name is not None and numpy_name != torch_name:
        raise TypeError(f"got both {numpy_name!r} and {torch_name!r} for the same argument")
    if numpy_name is not None:
        return numpy_name
    return default if torch_name is None else torch_name


def axis_arg(axis: Any) -> Any:
    """``[0, 1]`` → ``(0, 1)``: NumPy wants a tuple of axes."""
    return tuple(axis) if isinstance(axis, list) else axis

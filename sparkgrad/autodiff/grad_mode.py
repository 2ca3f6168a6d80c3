"""Gradient recording on/off: ``no_grad()`` and ``enable_grad()``, as in PyTorch.

The switch is thread-local, so ranks running as threads (the ``threads`` transport) can
evaluate without gradients independently of each other.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

_state = threading.local()


def is_grad_enabled() -> bool:
    """Whether new ops record a graph for backward."""
    return getattr(_state, "enabled", True)


def _set_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


class _GradMode:
    """Context manager and decorator that sets grad mode and restores it afterwards."""

    mode = True

    def __enter__(self) -> None:
        self._previous = is_grad_enabled()
        _set_enabled(self.mode)

    def __exit__(self, *exc: object) -> None:
        _set_enabled(self._previous)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with type(self)():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """``with sg.no_grad():`` evaluates without recording a graph (inference, updates)."""

    mode = False


class enable_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """``with sg.enable_grad():`` records a graph even inside ``no_grad``."""

    mode = True


class inference_mode(_GradMode):  # noqa: N801 - PyTorch's name
    """``with sg.inference_mode():`` — here the same as ``no_grad`` (``mode=False``: a no-op)."""

    def __init__(self, mode: bool = True) -> None:
        self.mode = not mode

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with inference_mode(not self.mode):
                return fn(*args, **kwargs)

        return wrapper


class set_grad_enabled(_GradMode):  # noqa: N801 - PyTorch's name
    """``sg.set_grad_enabled(False)`` switches recording now; as ``with sg.set_grad_enabled(
    is_train):`` it restores the previous mode afterwards (as in PyTorch)."""

    def __init__(self, mode: bool) -> None:
        self._previous = is_grad_enabled()
        self.mode = bool(mode)
        _set_enabled(self.mode)

    def __enter__(self) -> None:
        _set_enabled(self.mode)

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        _set_enabled(self._previous)  # used as a decorator: only switch while fn runs
        mode = self.mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(mode):
                return fn(*args, **kwargs)

        return wrapper

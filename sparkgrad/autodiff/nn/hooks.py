"""Forward hooks: code that runs around a module's ``forward`` without changing the module.

``module.register_forward_pre_hook(fn)`` calls ``fn(module, args)`` before ``forward``
(it may return replacement args); ``module.register_forward_hook(fn)`` calls
``fn(module, args, output)`` after it (it may return a replacement output). Typical uses:
printing activation shapes, capturing activations for a lesson, pipeline stages.

``Module.__call__`` only comes here when a hook is registered, so models without hooks
never pay for the loops below.
"""

from __future__ import annotations

import itertools
from typing import Any

__all__ = ["RemovableHandle"]

_ids = itertools.count()


class RemovableHandle:
    """Returned by hook registration: ``handle.remove()`` unregisters the hook."""

    def __init__(self, hooks: dict) -> None:
        self._hooks = hooks
        self.id = next(_ids)

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def add_hook(hooks: dict, hook: Any) -> RemovableHandle:
    """Store ``hook`` in the ordered dict ``hooks`` and return its handle."""
    handle = RemovableHandle(hooks)
    hooks[handle.id] = hook
    return handle


def call_with_hooks(module: Any, args: tuple, kwargs: dict) -> Any:
    """Pre-hooks, then ``forward``, then forward hooks (each in registration order)."""
    for hook in list(module._forward_pre_hooks.values()):
        result = hook(module, args)
        if result is not None:
            args = result if isinstance(result, tuple) else (result,)
    output = module.forward(*args, **kwargs)
    for hook in list(module._forward_hooks.values()):
        result = hook(module, args, output)
        if result is not None:
            output = result
    return output

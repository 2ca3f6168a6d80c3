"""``make_strategy``: from a name (``--strategy``) to a :class:`Strategy` on this rank.

One table maps each name the command line accepts to the class that implements it; the
classes live one per file under ``sparkgrad/parallel/`` and are imported only when asked
for, so ``--strategy data`` never loads the pipeline code.

Every constructor takes ``(model, optimizer_factory, loss_fn, process_group=None, **options)``
and must be called on every rank of the group with the same model (built from the same
seed) and the same options.
"""

from __future__ import annotations

import importlib
from typing import Any

from sparkgrad.errors import ConfigError
from sparkgrad.parallel.strategy import Strategy

STRATEGY_CLASSES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "single": ("sparkgrad.parallel.single", "SingleProcess", {}),
    "data": ("sparkgrad.parallel.data.strategy", "DataParallelStrategy", {}),
    "model": ("sparkgrad.parallel.pipeline.model_parallel", "ModelParallel", {}),
    "pipeline": ("sparkgrad.parallel.pipeline.pipeline_parallel", "PipelineParallel", {}),
    "tensor": ("sparkgrad.parallel.tensor.strategy", "TensorParallel", {}),
    "zero1": ("sparkgrad.parallel.zero.strategy", "ZeRO", {"stage": 1}),
    "zero2": ("sparkgrad.parallel.zero.strategy", "ZeRO", {"stage": 2}),
    "zero3": ("sparkgrad.parallel.zero.strategy", "ZeRO", {"stage": 3}),
    "hybrid": ("sparkgrad.parallel.hybrid.strategy", "HybridParallel", {}),
    "context": ("sparkgrad.parallel.context.strategy", "ContextParallel", {}),
}
STRATEGIES = tuple(STRATEGY_CLASSES)


def strategy_class(name: str) -> tuple[type[Strategy], dict[str, Any]]:
    """The class behind ``name`` and the options the name fixes (e.g. ZeRO's stage)."""
    if name not in STRATEGY_CLASSES:
        raise ConfigError(f"--strategy must be one of {', '.join(STRATEGIES)}, found {name!r}")
    module, cls, fixed = STRATEGY_CLASSES[name]
    return getattr(importlib.import_module(module), cls), dict(fixed)


def make_strategy(
    name: str,
    model: Any,
    optimizer_factory: Any,
    loss_fn: Any,
    process_group: Any = None,
    **options: Any,
) -> Strategy:
    """Build strategy ``name`` on this rank (see the module docstring for the arguments)."""
    cls, fixed = strategy_class(name)
    if name == "single":
        return cls(model, optimizer_factory, loss_fn)
    return cls.build(model, optimizer_factory, loss_fn, process_group, **fixed, **options)

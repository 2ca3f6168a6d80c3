"""Make an already connected transport the default group (for launchers like SparkRunner).

``init_process_group`` does its own rendezvous (``env://``, ``tcp://``, threads). A
launcher that has rendezvoused already -- the Spark runner exchanges addresses through
``BarrierTaskContext.allGather`` -- hands its transport over here instead, and from then
on ``dist.all_reduce(...)`` and friends work on it exactly as after ``init_process_group``.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.comms.process_group import ProcessGroup
from sparkgrad.comms.transport import Transport
from sparkgrad.distributed import state
from sparkgrad.errors import CommError


def init_from_transport(
    transport: Transport, timeout: float = 30.0, topology: Any = None, backend: str = "tcp"
) -> state.Group:
    """Join the default process group over ``transport``; returns the group."""
    if state.is_initialized():
        raise CommError("a default process group exists; call destroy_process_group first")
    group = state.Group(ProcessGroup(transport, timeout=timeout, topology=topology))
    state._local.group = group
    state._local.backend = backend
    return group

"""``sparkgrad.multiprocessing``: ``torch.multiprocessing``'s names.

``spawn``/``start_processes``/``ProcessContext`` and the exceptions live in
:mod:`sparkgrad.comms.process_spawn`; ``Process`` is ``multiprocessing.Process`` plus the
job secret; everything else is the standard library's ``multiprocessing`` (as
``torch.multiprocessing`` re-exports it). Tensors passed to children travel by pickling,
as with the standard library (PyTorch would share their memory instead).
"""

from multiprocessing import (
    Array,
    Barrier,
    Condition,
    Event,
    Lock,
    Manager,
    Pipe,
    Pool,
    Queue,
    RLock,
    Semaphore,
    SimpleQueue,
    Value,
    active_children,
    cpu_count,
    current_process,
    freeze_support,
    get_all_start_methods,
    get_context,
    get_start_method,
    parent_process,
    set_start_method,
)

from sparkgrad.comms.process_spawn import (
    Process,
    ProcessContext,
    ProcessException,  # torch keeps it in torch.multiprocessing.spawn; here it is also here
    ProcessExitedException,
    ProcessRaisedException,
    spawn,
    start_processes,
)

__all__ = [
    "Array",
    "Barrier",
    "Condition",
    "Event",
    "Lock",
    "Manager",
    "Pipe",
    "Pool",
    "Process",
    "ProcessContext",
    "ProcessExitedException",
    "ProcessRaisedException",
    "Queue",
    "RLock",
    "Semaphore",
    "SimpleQueue",
    "Value",
    "active_children",
    "cpu_count",
    "current_process",
    "freeze_support",
    "get_all_start_methods",
    "get_context",
    "get_start_method",
    "parent_process",
    "set_start_method",
    "spawn",
    "start_processes",
]

"""Asynchronous training: a parameter server, Hogwild!, and stale-synchronous parallel.

The synchronous strategies (``sparkgrad.parallel`` data, ZeRO, ...) make every rank wait
for every other at each step: one slow rank slows all. Asynchronous training lets each
worker go at its own pace, and pays for it with *stale* gradients (computed on weights
that others have changed since). This package runs all four policies over one server:

- :mod:`.server`: :class:`ParameterServer` (on the Spark driver: why, see there) holds
  the weights and the optimizer and applies pushes in mode ``sync``, ``async``, ``ssp``
  or ``hogwild``;
- :mod:`.worker`: :class:`PSClient` (pull, push, with deadlines) and :class:`AsyncWorker`,
  the Strategy the engine's Trainer drives on each worker;
- :mod:`.protocol`: the messages, as sparkgrad frames over authenticated sockets;
- :mod:`.staleness`: clocks, the SSP rule, and the staleness of every push;
- :mod:`.hogwild`: lock-free updates of shared weights, and why sparsity makes them work;
- :mod:`.flat_params`: the model's parameters as views into one flat vector.

From the command line: ``spark-submit main.py --mode async`` (or ``hogwild``, ``ssp
--staleness 2``); ``--mode sync`` (the default) keeps the synchronous ``--strategy``.
In a notebook or test, :func:`sparkgrad.engine.async_launch.run_local` runs the same
workers as threads or processes of this machine.
"""

from sparkgrad.parallel.asynchronous.server import MODES, ParameterServer
from sparkgrad.parallel.asynchronous.staleness import Clocks, StalenessLog
from sparkgrad.parallel.asynchronous.worker import AsyncWorker, InjectedFault, PSClient

__all__ = [
    "MODES",
    "AsyncWorker",
    "Clocks",
    "InjectedFault",
    "PSClient",
    "ParameterServer",
    "StalenessLog",
]

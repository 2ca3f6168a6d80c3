"""What the recorded collectives would cost on a modelled cluster -- an observer, after the fact.

The communicator records every call it ran (collective, algorithm, bytes, measured
seconds; see :meth:`~sparkgrad.comms.communicator.Communicator.record`). This module reads
those records and answers two questions a NCCL user asks about a cluster they do not have:

- *how long would these calls take there?* :func:`predicted_seconds` sums
  :func:`~sparkgrad.comms.model.costs.predict` over the records, each with the algorithm
  the cluster's tuner would pick, and :func:`replay` lays them on a :class:`SimClock`;
- *which algorithm would NCCL pick there, and why?* :func:`explain` prints the candidates
  with their predicted times, as ``NCCL_DEBUG_SUBSYS=TUNING`` would::

      >>> explain({"collective": "all_reduce", "nbytes": 1 << 30, "nranks": 8,
      ...          "algorithm": "ring"}, "1x8-h100")                  # doctest: +SKIP
      'all_reduce of 1.0 GiB on 8 ranks of 1x8-h100: picks ring (2.870 ms; tree 5.6 ms ...)'

Nothing here runs during a collective: the data path never waits for the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sparkgrad.comms.model.costs import ALGORITHMS, predict
from sparkgrad.comms.model.sim_clock import SimClock
from sparkgrad.comms.model.topology import Topology
from sparkgrad.comms.model.tuner import select_algorithm


def as_topology(topology: Topology | str) -> Topology:
    """``topology`` itself, or parsed from a spec such as ``"2x8-h100"``."""
    return topology if isinstance(topology, Topology) else Topology.parse(topology)


def predict_call(record: dict[str, Any], topology: Topology | str) -> tuple[str, float]:
    """``(algorithm, seconds)`` the modelled cluster's tuner would pick for one record."""
    topo = as_topology(topology)
    collective, nbytes, n = record["collective"], record["nbytes"], record["nranks"]
    algo = select_algorithm(collective, nbytes, n, topo)
    return algo, predict(collective, algo, nbytes, n, topo)


def predicted_seconds(records: Iterable[dict[str, Any]], topology: Topology | str) -> float:
    """Seconds the recorded calls would take, one after another, on ``topology``."""
    topo = as_topology(topology)
    return sum(predict_call(r, topo)[1] for r in records)


def replay(records: Iterable[dict[str, Any]], topology: Topology | str) -> SimClock:
    """A :class:`SimClock` advanced by the predicted time of every record, in order."""
    topo, clock = as_topology(topology), SimClock()
    for r in records:
        clock.advance(predict_call(r, topo)[1], f"{r['collective']}#{r.get('seq', 0)}")
    return clock


def explain(record: dict[str, Any], topology: Topology | str) -> str:
    """Which algorithm the modelled cluster would pick for ``record``, and the runners-up."""
    topo = as_topology(topology)
    collective, nbytes, n = record["collective"], record["nbytes"], record["nranks"]
    chosen, _ = predict_call(record, topo)
    times = {a: predict(collective, a, nbytes, n, topo) for a in ALGORITHMS[collective]}
    others = ", ".join(f"{a} {t * 1e3:.3g} ms" for a, t in times.items() if a != chosen)
    ran = record.get("algorithm")
    here = f"; ran {ran} here" if ran and ran != chosen else ""
    return (
        f"{collective} of {_size(nbytes)} on {n} ranks of {topology}: picks {chosen} "
        f"({times[chosen] * 1e3:.3g} ms{'; ' + others if others else ''}){here}"
    )


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes} B"

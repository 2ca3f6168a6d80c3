"""Choosing an algorithm, as NCCL's tuner does: the cheapest predicted, unless told otherwise.

The communicator asks :func:`select_algorithm` once per call, with *this machine's*
calibrated link (``Topology.local``): what runs is what is fastest here. A modelled
cluster (``2x8-h100``) never decides what runs; :mod:`sparkgrad.comms.model.prediction`
asks the same question about it, afterwards, to say what NCCL would have picked there.
"""

from __future__ import annotations

import os

from sparkgrad.comms.model.costs import ALGORITHMS, check_algorithm, predict
from sparkgrad.comms.model.topology import Topology
from sparkgrad.errors import ConfigError


def _env_choice(collective: str, value: str) -> tuple[str, ...] | None:
    """The algorithms ``NCCL_ALGO`` allows for ``collective`` (None: it names none of them).

    As in NCCL the variable holds a comma-separated list (``"ring,tree"``), matched without
    case, and a leading ``^`` turns it into a list to exclude (``"^tree"``). Every name must
    be a known algorithm of *some* collective; a list that names none of this collective's
    algorithms leaves it on automatic choice (NCCL_ALGO=tree does not break broadcast).
    """
    text = value.strip().lower()
    exclude = text.startswith("^")
    names = [name.strip() for name in text.lstrip("^").split(",") if name.strip()]
    known = {name for algos in ALGORITHMS.values() for name in algos}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ConfigError(
            f"NCCL_ALGO={value!r}: expected a comma-separated list (optionally after '^') of "
            f"{', '.join(sorted(known))}; found unknown {', '.join(unknown) or 'empty list'}"
        )
    mine = ALGORITHMS[collective]
    if exclude:
        allowed = tuple(a for a in mine if a not in names)
        return allowed or None
    allowed = tuple(a for a in mine if a in names)
    return allowed or None


def select_algorithm(
    collective: str,
    nbytes: int,
    nranks: int,
    topology: Topology,
    override: str | None = None,
) -> str:
    """The cheapest algorithm by :func:`predict`, as NCCL's tuner picks one per call.

    ``override`` (an algorithm name for this collective) wins; otherwise the environment
    variable ``NCCL_ALGO`` restricts the candidates (see :func:`_env_choice`). Ties go to
    the first name in ``ALGORITHMS[collective]``. Small messages pick the algorithm with
    the fewest steps (tree, binomial), large ones the one moving the fewest bytes (ring,
    chain). With a power-of-two rank count halving-doubling is both latency- and
    bandwidth-optimal in this model (Rabenseifner), so it wins there unless
    ``NCCL_ALGO=ring,tree`` restricts the choice to NCCL's own pair; with other counts
    its fold-in/fold-out steps make ring cheaper for large messages. (Real networks also
    punish its far-apart partners with link contention, which this model leaves out.)
    """
    if collective not in ALGORITHMS:
        raise ConfigError(
            f"unknown collective {collective!r}: expected one of {', '.join(ALGORITHMS)}"
        )
    if override is not None:
        name = override.strip().lower()
        check_algorithm(collective, name)
        return name
    candidates = ALGORITHMS[collective]
    env = os.environ.get("NCCL_ALGO")
    if env:
        candidates = _env_choice(collective, env) or candidates
    return min(candidates, key=lambda a: predict(collective, a, nbytes, nranks, topology))

"""The cost model and simulator: beside the data path, never inside it.

- :mod:`.links`      ``Link`` and the ``LINKS`` presets (alpha, beta, efficiency)
- :mod:`.topology`   ``Topology`` ("2x8-h100": nodes x ranks, intra and inter link)
- :mod:`.costs`      ``ALGORITHMS``, each algorithm's closed-form cost, ``predict``
- :mod:`.tuner`      ``select_algorithm``: the cheapest algorithm, or what ``NCCL_ALGO`` says
- :mod:`.calibrate`  ``calibrate()``, the least-squares fit of the local link
- :mod:`.sim_clock`  ``SimClock``, a per-rank simulated timeline
- :mod:`.prediction` what recorded calls would cost on a modelled cluster, and why

The communicator uses only the tuner, with this machine's calibrated link, to choose what
runs. Everything about a modelled cluster reads the communicator's records afterwards.
"""

from sparkgrad.comms.model.calibrate import CalibrationResult, calibrate
from sparkgrad.comms.model.costs import (
    ALGORITHMS,
    Terms,
    bus_bandwidth_factor,
    check_algorithm,
    cost_terms,
    predict,
)
from sparkgrad.comms.model.links import LINKS, Link, get_link
from sparkgrad.comms.model.prediction import explain, predict_call, predicted_seconds, replay
from sparkgrad.comms.model.sim_clock import SimClock
from sparkgrad.comms.model.topology import Topology
from sparkgrad.comms.model.tuner import select_algorithm

__all__ = [
    "ALGORITHMS",
    "LINKS",
    "CalibrationResult",
    "Link",
    "SimClock",
    "Terms",
    "Topology",
    "bus_bandwidth_factor",
    "calibrate",
    "check_algorithm",
    "cost_terms",
    "explain",
    "get_link",
    "predict",
    "predict_call",
    "predicted_seconds",
    "replay",
    "select_algorithm",
]

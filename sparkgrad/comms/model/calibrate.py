"""calibrate(): measure the local link's alpha, beta and gamma by a least-squares fit.

Every cost in :mod:`sparkgrad.comms.model.costs` is linear in its unknowns,

    seconds = steps * alpha + wire_bytes * (1 / bandwidth) + reduce_bytes * gamma
              + turn_steps * turn_alpha + turn_bytes * turn_beta_inv,

so measured ``(size, seconds)`` points of known calls give an overdetermined linear
system ``A x = t`` with one row ``(steps, wire_bytes, reduce_bytes)`` per point. We
solve it by least squares on *relative* errors (each row divided by its measured
time), so an 8-byte message counts as much as a 64 MiB one. Points of a plain
send (``(nbytes, seconds)`` tuples) pin alpha and beta; gamma needs points where bytes
are reduced but not sent, e.g. from :func:`time_local_reduction`. An unknown that the
points cannot separate (gamma without reduction points) keeps its given value. With a
``concurrency`` (loopback: the CPU cores), a call on ``n`` ranks has its byte counts
stretched by ``s = max(1, n / concurrency)`` before the fit, as ``predict`` does, and
``turn_steps = (s-1) * steps``, ``turn_bytes = (s-1) * wire_bytes`` price what a rank
waits for its turn on a shared core (:class:`~sparkgrad.comms.model.links.Link`); those two
unknowns are fitted only when some points have more ranks than cores (e.g. 4 ranks on
2 cores next to 2-rank points), otherwise they stay 0. Every unknown that noise pushes
below zero is pinned at 0, but for ``turn_beta_inv``: it may be negative (sharing cores
slowed bytes down less than the full stretch ``s``), down to ``-1/bandwidth``.

    >>> result = calibrate([(1024, 3.0e-5), (1 << 20, 4.4e-4), (16 << 20, 6.7e-3)])
    >>> link = result.link()          # a Link("loopback", alpha, beta, 1.0, gamma)
    >>> print(result.report())        # measured vs predicted, size by size
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from sparkgrad.comms.model.costs import Terms, cost_terms
from sparkgrad.comms.model.links import Link
from sparkgrad.errors import ConfigError

DEFAULT_SIZES: tuple[int, ...] = tuple(8 * 4**k for k in range(11))  # 8 B .. 8 MiB


@dataclass(frozen=True)
class Measurement:
    """One measured call: its cost counts, what it was, and the seconds it took."""

    label: str
    nbytes: int
    terms: Terms
    seconds: float
    flows: int = 1  # transfers running at once (the ranks of a collective)

    @classmethod
    def of(
        cls, collective: str, algorithm: str, nbytes: int, nranks: int, seconds: float
    ) -> Measurement:
        """A measured collective call, e.g. ``Measurement.of("all_reduce", "ring", S, 2, t)``."""
        terms = cost_terms(collective, algorithm, nbytes, nranks)
        label = f"{collective}/{algorithm}/n={nranks}"
        flows = 1 if collective in ("send", "recv") else nranks
        return cls(label, int(nbytes), terms, float(seconds), flows)

    @classmethod
    def send(cls, nbytes: int, seconds: float) -> Measurement:
        """A one-way message of ``nbytes`` that took ``seconds``."""
        return cls("send", int(nbytes), Terms(1, nbytes), float(seconds))

    @classmethod
    def local_reduction(cls, nbytes: int, seconds: float) -> Measurement:
        """Adding ``nbytes`` into a local buffer, no communication: pins gamma."""
        return cls("reduce(local)", int(nbytes), Terms(0, 0, nbytes), float(seconds))


@dataclass(frozen=True)
class CalibrationResult:
    """Fitted ``alpha`` (s), ``beta`` (bytes/s, achievable), ``gamma`` (s/byte) and, for
    ranks sharing cores, ``turn_alpha`` (s/step) and ``turn_beta_inv`` (s/byte)."""

    alpha: float
    beta: float
    gamma: float
    measurements: tuple[Measurement, ...]
    concurrency: int = 0
    turn_alpha: float = 0.0
    turn_beta_inv: float = 0.0

    def link(self, name: str = "loopback") -> Link:
        """The fitted link (efficiency 1: ``beta`` is already what was achieved)."""
        return Link(
            name,
            self.alpha,
            self.beta,
            1.0,
            self.gamma,
            self.concurrency,
            self.turn_alpha,
            self.turn_beta_inv,
        )

    def predicted(self, m: Measurement) -> float:
        """Seconds the fitted link predicts for the call measured in ``m``."""
        link = self.link()
        return m.terms.scaled(link.slowdown(m.flows)).time(link)

    def rows(self) -> list[dict[str, float | int | str]]:
        """Per measurement: label, nbytes, measured and predicted seconds, relative error."""
        out: list[dict[str, float | int | str]] = []
        for m in self.measurements:
            pred = self.predicted(m)
            out.append(
                {
                    "label": m.label,
                    "nbytes": m.nbytes,
                    "measured_s": m.seconds,
                    "predicted_s": pred,
                    "rel_error": (pred - m.seconds) / m.seconds,
                }
            )
        return out

    def max_relative_error(self) -> float:
        """The worst ``|predicted - measured| / measured`` over all points."""
        return max(abs(float(r["rel_error"])) for r in self.rows())

    def report(self) -> str:
        """A readable table of the fit: measured vs predicted per message size."""
        lines = [
            f"# calibrated: alpha {self.alpha * 1e6:.2f} us, beta {self.beta / 1e9:.3f} GB/s, "
            f"gamma {self.gamma * 1e9:.3f} ns/B; sharing cores: turn_alpha "
            f"{self.turn_alpha * 1e6:.2f} us/step, "
            f"turn_beta_inv {self.turn_beta_inv * 1e9:.3f} ns/B",
            f"# {'label':>22} {'size(B)':>10} {'measured(us)':>13} {'predicted(us)':>14} "
            f"{'error':>7}",
        ]
        for r in self.rows():
            lines.append(
                f"  {r['label']:>22} {r['nbytes']:>10} {float(r['measured_s']) * 1e6:>13.1f} "
                f"{float(r['predicted_s']) * 1e6:>14.1f} {float(r['rel_error']):>+7.1%}"
            )
        return "\n".join(lines)


def _as_measurement(point: Measurement | Sequence[float]) -> Measurement:
    if isinstance(point, Measurement):
        return point
    if len(point) != 2:
        raise ConfigError(
            f"calibrate: expected (nbytes, seconds) or a Measurement, found {point!r}"
        )
    return Measurement.send(int(point[0]), float(point[1]))


def _out_of_range(x: np.ndarray, i: int) -> bool:
    """Below zero, or for ``turn_beta_inv`` (index 4) below ``-1/bandwidth`` (``-x[1]``)."""
    return x[i] < -x[1] if i == 4 else x[i] < 0


def _fit(rows: np.ndarray, seconds: np.ndarray, free: list[int], fixed: np.ndarray) -> np.ndarray:
    """Relative least squares over the ``free`` unknowns, the others held at ``fixed``."""
    x = fixed.copy()
    held = [i for i in range(len(fixed)) if i not in free]
    target = seconds - rows[:, held] @ fixed[held]
    weights = 1.0 / seconds
    solution, *_ = np.linalg.lstsq(rows[:, free] * weights[:, None], target * weights, rcond=None)
    x[free] = solution
    return x


def calibrate(
    measurements: Iterable[Measurement | Sequence[float]] | None = None,
    *,
    transport_fn: Callable[[int], float] | None = None,
    reduce_fn: Callable[[int], float] | None = None,
    sizes: Sequence[int] = DEFAULT_SIZES,
    repeats: int = 5,
    gamma: float = 0.0,
    concurrency: int = 0,
) -> CalibrationResult:
    """Fit alpha, beta, gamma from measured points (see the module docstring).

    Args:
        measurements: ``Measurement`` objects or ``(nbytes, seconds)`` one-way sends.
        transport_fn: ``fn(nbytes) -> seconds`` of one one-way message; called
            ``repeats`` times per size in ``sizes``, the median is kept.
        reduce_fn: ``fn(nbytes) -> seconds`` of a local reduction (e.g.
            :func:`time_local_reduction`); gives the points that pin gamma.
        gamma: the value gamma keeps when no point separates it.
        concurrency: transfers the link runs at full speed at once (0: no sharing).
    """
    points = [_as_measurement(p) for p in (measurements or [])]
    for fn, make in ((transport_fn, Measurement.send), (reduce_fn, Measurement.local_reduction)):
        if fn is not None:
            for size in sizes:
                points.append(make(size, float(np.median([fn(size) for _ in range(repeats)]))))
    if len({p.nbytes for p in points}) < 2:
        raise ConfigError(
            f"calibrate: expected points at >= 2 different sizes, found {len(points)} point(s)"
        )
    if any(not p.seconds > 0 for p in points):
        raise ConfigError("calibrate: expected every measured time to be > 0 seconds")
    shared = Link("fit", 0.0, 1.0, concurrency=concurrency)
    scaled = [p.terms.scaled(shared.slowdown(p.flows)) for p in points]
    rows = np.array(
        [[t.steps, t.wire_bytes, t.reduce_bytes, t.turn_steps, t.turn_bytes] for t in scaled]
    )
    seconds = np.array([p.seconds for p in points])
    fixed = np.array([0.0, 0.0, gamma, 0.0, 0.0])
    free = [i for i in range(5) if rows[:, i].any()]
    unit = rows / np.abs(rows).max(axis=0).clip(min=1e-300)  # columns on one scale for ranks
    for i in (2, 3, 4):  # unknowns the points cannot tell apart keep their given value
        others = [j for j in free if j != i]
        if i in free and np.linalg.matrix_rank(unit[:, others]) == np.linalg.matrix_rank(
            unit[:, free]
        ):
            free.remove(i)  # e.g. reduction and wire bytes move together: no gamma
    x = _fit(rows, seconds, free, fixed)
    while any(_out_of_range(x, i) for i in free):  # noise pushed an unknown too low: pin it
        low = [i for i in free if _out_of_range(x, i)]
        free = [i for i in free if i not in low]
        fixed[low] = 0.0
        x = _fit(rows, seconds, free, fixed) if free else fixed
    inv_bandwidth = x[1] if x[1] > 0 else 1e-18
    beta = float(1.0 / inv_bandwidth)
    return CalibrationResult(
        float(x[0]), beta, float(x[2]), tuple(points), concurrency, float(x[3]), float(x[4])
    )


def time_local_reduction(nbytes: int, dtype: str = "float32") -> float:
    """Seconds for one ``a += b`` over ``nbytes`` of NumPy arrays (what a ring step reduces)."""
    count = max(1, nbytes // np.dtype(dtype).itemsize)
    a = np.ones(count, dtype=dtype)
    b = np.ones(count, dtype=dtype)
    start = time.perf_counter()
    np.add(a, b, out=a)
    return time.perf_counter() - start

"""The communicator: a group of ranks over a transport, running collectives safely.

One :class:`Communicator` per rank and group. Each collective call

1. checks for a pending failure notice from a peer, and for injected faults;
2. picks its algorithm with the cost model (``select_algorithm``: cheapest predicted,
   unless overridden per call, per communicator or by ``NCCL_ALGO``);
3. numbers itself (``seq``) and writes a *fingerprint* (collective, shape, dtype, op,
   root, algorithm) into every frame it sends;
4. runs the algorithm on a :class:`~sparkgrad.comms.channel.Channel`, every receive bounded
   by the call's deadline (``timeout`` seconds after the call started);
5. advances the rank's :class:`SimClock` by the time predicted on ``topology`` and logs an
   ``NCCL INFO`` line (``NCCL_DEBUG=INFO``) with bytes, algorithm, predicted and measured time.

Failure behaviour, the part users of NCCL and gloo complain about most:

- a received frame whose fingerprint or sequence number differs from the call's means
  the ranks called different collectives: the rank raises
  :class:`~sparkgrad.errors.CollectiveMismatch` naming both calls and tells every peer,
  which raise the same error. The rooted collectives (broadcast, reduce, gather,
  scatter) end with :meth:`~sparkgrad.comms.channel.Channel.confirm`: a rank that only
  sent to a peer waits for its one small ACK, so the root of a broadcast raises too,
  not just its receivers. ``send`` is the exception, on purpose: it returns once its
  bytes are handed over (no send/recv pattern can deadlock), a mismatched ``recv``
  raises on the receiver, and the sender raises at its next call on this group;
- a receive that times out, or a peer whose connection closes, starts a short *roll call*:
  the rank announces "stuck" to all peers, every waiting rank answers the same way, and
  after a grace period each raises :class:`~sparkgrad.errors.CollectiveTimeout` naming the
  collective, its sequence number and the ranks that never answered (the missing ones).

After either error the communicator is unusable, as an aborted NCCL communicator is.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sparkgrad.autodiff.profiler import hooks as _prof
from sparkgrad.comms.channel import Channel
from sparkgrad.comms.faults import FaultPlan, RankDropped
from sparkgrad.comms.framing import DEFAULT_MAX_FRAME_BYTES, MISMATCH, STUCK, Frame
from sparkgrad.comms.transport import ControlArrived, PeerLost, Transport, WaitTimeout
from sparkgrad.errors import CollectiveMismatch, CollectiveTimeout, CommError

log = logging.getLogger("sparkgrad.comms")
CONFIRMED = frozenset({"broadcast", "reduce", "gather", "scatter"})  # tree-shaped: see run


def _debug_enabled() -> bool:
    """``NCCL_DEBUG=INFO`` (or TRACE) turns on the per-call log lines, as in NCCL."""
    if os.environ.get("NCCL_DEBUG", "").upper() in ("INFO", "TRACE"):
        if not log.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(message)s"))
            log.addHandler(handler)
        log.setLevel(logging.INFO)
        return True
    return log.isEnabledFor(logging.INFO)


class Communicator:
    """Collectives among ``ranks`` (transport ranks; default: all) over ``transport``."""

    def __init__(
        self,
        transport: Transport,
        ranks: Sequence[int] | None = None,
        *,
        tag: int = 0,
        timeout: float = 30.0,
        topology: Any = None,
        algorithms: dict[str, str] | None = None,
        segment_bytes: int = 1 << 20,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        faults: FaultPlan | None = None,
    ) -> None:
        self.transport = transport
        self.ranks = tuple(range(transport.world_size) if ranks is None else ranks)
        if transport.rank not in self.ranks or len(set(self.ranks)) != len(self.ranks):
            raise CommError(
                f"rank {transport.rank} builds a communicator over ranks {list(self.ranks)}: "
                "expected distinct ranks that include this one"
            )
        self.rank, self.size = self.ranks.index(transport.rank), len(self.ranks)
        self.tag, self.timeout = tag, float(timeout)
        self.algorithms = dict(algorithms or {})
        self.segment_bytes, self.max_frame_bytes = segment_bytes, max_frame_bytes
        self.faults = faults
        self.seq = 0
        self.calls = 0
        self._p2p_seq: dict[tuple[str, int], int] = defaultdict(int)
        self._broken: str | None = None
        self._topology = topology
        self._clock: Any = None
        self.history: list[dict[str, Any]] = []  # one record per call, for reports
        self.subgroups: list[Any] = []  # groups made from this one (their clocks count too)
        self._debug = _debug_enabled()
        if self._debug:
            order = " ".join(str(r) for r in range(self.size))
            log.info(
                "NCCL INFO comm tag %d rank %d nranks %d - Init COMPLETE", tag, self.rank, self.size
            )
            log.info("NCCL INFO Channel 00/01 : %s (ring order)", order)
            from sparkgrad.comms.algorithms.tree import tree_neighbours

            for t in (0, 1):
                parent, children = tree_neighbours(self.rank, self.size, mirrored=bool(t))
                log.info(
                    "NCCL INFO Trees [%d] %s->%d->%s",
                    t,
                    -1 if parent is None else parent,
                    self.rank,
                    "/".join(map(str, children)) or "-1",
                )

    # -- cost model ---------------------------------------------------------------------------
    @property
    def topology(self) -> Any:
        """The modelled cluster for algorithm choice and the simulated clock.

        Given as ``topology=`` (a ``Topology`` or a spec such as ``"2x8-h100"``), else read
        from ``SPARKGRAD_TOPOLOGY``, else this machine's calibrated loopback link.
        """
        if self._topology is None and os.environ.get("SPARKGRAD_TOPOLOGY"):
            self._topology = os.environ["SPARKGRAD_TOPOLOGY"]
        if self._topology is None:
            from sparkgrad.comms.cost_model import Topology

            self._topology = Topology.local(self.size)
        elif isinstance(self._topology, str):
            from sparkgrad.comms.cost_model import Topology

            self._topology = Topology.parse(self._topology)
        return self._topology

    @property
    def clock(self) -> Any:
        """This rank's :class:`SimClock`: predicted seconds of every call so far."""
        if self._clock is None:
            from sparkgrad.comms.cost_model import SimClock

            self._clock = SimClock()
        return self._clock

    def choose_algorithm(self, collective: str, nbytes: int, override: str | None) -> str:
        """Per-call override, else per-communicator choice, else the cost model's pick."""
        from sparkgrad.comms.cost_model import select_algorithm

        override = override or self.algorithms.get(collective)
        return select_algorithm(collective, nbytes, self.size, self.topology, override)

    def _account(self, collective: str, algo: str, nbytes: int, detail: str, t0: float) -> None:
        """Advance the simulated clock, keep a record and log one NCCL-style line."""
        from sparkgrad.comms.cost_model import predict

        measured = time.perf_counter() - t0
        predicted = predict(collective, algo, nbytes, self.size, self.topology)
        self.clock.advance(predicted, f"{collective}#{self.seq}")
        self.history.append(
            dict(
                collective=collective,
                algorithm=algo,
                nbytes=nbytes,
                seq=self.seq,
                measured=measured,
                predicted=predicted,
            )
        )
        if _prof.active:  # sg.profiler records this call (one flag read when it is off)
            _prof.on_comm(self, self.history[-1], t0)
        if self._debug:
            log.info(
                "NCCL INFO %s: opCount %x %s bytes %d nranks %d rank %d algo %s "
                "predicted %.1f us measured %.1f us",
                collective,
                self.seq,
                detail,
                nbytes,
                self.size,
                self.rank,
                algo,
                predicted * 1e6,
                measured * 1e6,
            )

    # -- running one call ---------------------------------------------------------------------
    def _check_usable(self) -> None:
        if self._broken is not None:
            raise CommError(f"communicator is aborted after an earlier error: {self._broken}")

    def _maybe_drop(self) -> None:
        """Apply an injected 'drop this rank at call k' fault."""
        index = self.calls
        self.calls += 1
        if self.faults is None or not self.faults.drops(self.transport.rank, index):
            return
        self._broken = f"rank dropped by fault injection at call {index}"
        if self.faults.drop_mode == "hang":
            time.sleep(self.faults.hang_seconds)
        else:
            self.transport.close()
        raise RankDropped(f"rank {self.transport.rank} dropped at call {index} (fault injection)")

    def sleep_for_fault(self, dst: int) -> None:
        """Injected slow link: wait before sending a frame to transport rank ``dst``."""
        delay = self.faults.delay(self.transport.rank, dst) if self.faults else 0.0
        if delay > 0:
            time.sleep(delay)

    def run(
        self,
        collective: str,
        detail: str,
        nbytes: int,
        algorithm: str | None,
        body: Callable[[Channel, str], None],
    ) -> str:
        """Run one collective: choose, number, execute ``body(channel, algo)``, account."""
        self._check_usable()
        self._maybe_drop()
        algo = self.choose_algorithm(collective, nbytes, algorithm)
        self.seq += 1
        fingerprint = f"{collective}({detail}, algo={algo})"
        t0 = time.perf_counter()
        ch = Channel(self, self.seq, fingerprint, time.monotonic() + self.timeout, self.tag)
        pending = self.pending_notice()
        try:
            if pending is not None:
                raise ControlArrived(pending)
            body(ch, algo)
            if collective in CONFIRMED:
                ch.confirm()
        except (ControlArrived, PeerLost, WaitTimeout) as exc:
            self._fail(ch, exc)
        finally:
            ch.close()
        self._account(collective, algo, nbytes, detail, t0)
        return algo

    def pending_notice(self) -> Frame | None:
        """A failure notice a peer sent about an earlier call of this group or its send/recv."""
        return self.transport.mailbox.pending_control(self.tag)

    def recv_checked(self, peer: int, ch: Channel) -> Frame:
        """The next frame from group rank ``peer``, checked against the call's fingerprint."""
        return self._checked(peer, ch, self.transport.recv(ch.tag, self.ranks[peer], ch.deadline))

    def recv_ack(self, peer: int, ch: Channel) -> Frame:
        """The ACK of group rank ``peer`` for this call (see ``Channel.confirm``), checked."""
        mailbox = self.transport.mailbox
        return self._checked(peer, ch, mailbox.get_ack(ch.tag, self.ranks[peer], ch.deadline))

    def _checked(self, peer: int, ch: Channel, frame: Frame) -> Frame:
        if frame.seq != ch.seq or frame.fingerprint != ch.fingerprint:
            message = (
                f"collective mismatch: rank {self.rank} called {ch.fingerprint} as call "
                f"#{ch.seq}, but rank {peer} called {frame.fingerprint} as call #{frame.seq}. "
                "Every rank must call the same collectives, in the same order, with the same "
                "shapes and dtypes"
            )
            self._broken = message
            notice = Frame(MISMATCH, self.transport.rank, ch.tag, ch.seq, message, None)
            self.transport.send_control(self._others(), notice)
            raise CollectiveMismatch(message)
        return frame

    def _group_rank(self, transport_rank: int) -> int | str:
        return self.ranks.index(transport_rank) if transport_rank in self.ranks else "?"

    def _others(self) -> list[int]:
        return [r for r in self.ranks if r != self.transport.rank]

    def _fail(self, ch: Channel, exc: Exception) -> None:
        """Turn a control notice, a lost peer or an expired wait into the error every rank sees."""
        if isinstance(exc, ControlArrived) and exc.frame.kind == MISMATCH:
            self._broken = exc.frame.fingerprint
            raise CollectiveMismatch(
                f"{exc.frame.fingerprint} (reported by rank {exc.frame.src})"
            ) from None
        # Roll call: announce we are stuck, then see who else answers within a grace period.
        others = self._others()
        notice = Frame(STUCK, self.transport.rank, ch.tag, ch.seq, ch.fingerprint, None)
        self.transport.send_control(others, notice)
        lost = self.transport.mailbox.lost()
        grace = min(2.0, max(0.5, 0.25 * self.timeout))
        alive = [r for r in others if r not in lost]
        heard = self.transport.mailbox.collect_control(
            ch.tag, STUCK, time.monotonic() + grace, expect=len(alive)
        )
        missing = sorted(self.ranks.index(r) for r in others if r not in heard)
        name = ch.fingerprint.split("(", 1)[0]
        if isinstance(exc, PeerLost):
            cause = f"rank {self._group_rank(exc.peer)} is gone: {exc.reason}"
        elif isinstance(exc, WaitTimeout):
            cause = f"no data (or ACK) from rank {ch.waiting_on} within {self.timeout:g} s"
        else:
            frame = exc.frame
            cause = f"rank {self._group_rank(frame.src)} reported its call #{frame.seq} stuck"
        if not missing:
            cause += "; every rank answered, so they are probably waiting in different calls"
        message = (
            f"{name} (call #{ch.seq}, {ch.fingerprint}) failed on rank {self.rank} of "
            f"{self.size}: missing ranks {missing} ({cause}). Check that those ranks are alive "
            "and call the same collectives, or raise the timeout"
        )
        self._broken = message
        raise CollectiveTimeout(message) from None

"""The communicator: a group of ranks over a transport, running collectives safely.

One :class:`Communicator` per rank and group. Each collective call

1. checks for a pending failure notice from a peer, and for injected faults;
2. picks its algorithm: overridden per call, per communicator or by ``NCCL_ALGO``, else
   the cheapest on *this machine's* calibrated link (``comms.model.tuner``);
3. numbers itself (``seq``) and writes a *fingerprint* (collective, shape, dtype, op,
   root, algorithm) into every frame it sends;
4. runs the algorithm on a :class:`~sparkgrad.comms.channel.Channel`, every receive bounded
   by the call's deadline (``timeout`` seconds after the call started);
5. records the call -- collective, algorithm, buffer bytes, the bytes the transport really
   sent, start and measured seconds -- in :attr:`Communicator.history`, hands the record
   to every observer (a strategy's timeline, the profiler), and logs an ``NCCL INFO``
   line when ``NCCL_DEBUG=INFO``.

What the same calls would cost on a modelled cluster is not this module's business: the
model layer (:mod:`sparkgrad.comms.model`) reads the records and predicts.

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
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from sparkgrad.autodiff.profiler import hooks as _prof
from sparkgrad.comms.channel import Channel, FingerprintMismatch
from sparkgrad.comms.faults import FaultPlan, RankDropped
from sparkgrad.comms.framing import DEFAULT_MAX_FRAME_BYTES, MISMATCH, STUCK, Frame
from sparkgrad.comms.model.topology import Topology
from sparkgrad.comms.model.tuner import select_algorithm
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


def _predicted(record: dict[str, Any], topology: str) -> float:
    """What the modelled cluster would take for one call (only asked while profiling)."""
    from sparkgrad.comms.model.prediction import predict_call

    return predict_call(record, topology)[1]


class Communicator:
    """Collectives among ``ranks`` (transport ranks; default: all) over ``transport``."""

    def __init__(
        self,
        transport: Transport,
        ranks: Sequence[int] | None = None,
        *,
        tag: int = 0,
        timeout: float = 30.0,
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
        self.call_count = 0  # every call, for injected faults ("drop at call k")
        self._p2p_seq: dict[tuple[str, int], int] = defaultdict(int)
        self._broken: str | None = None
        self._local_link: Any = None  # this machine's calibrated link, for algorithm choice
        self.history: list[dict[str, Any]] = []  # one record per call (see record)
        self.observers: list[Callable[[dict[str, Any]], None]] = []  # shared with subgroups
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

    # -- choosing and recording ---------------------------------------------------------------
    def choose_algorithm(self, collective: str, nbytes: int, override: str | None) -> str:
        """Per-call override, else per-communicator choice, else ``NCCL_ALGO``, else the
        cheapest on this machine's calibrated link. The modelled cluster never decides."""
        if self._local_link is None:
            self._local_link = Topology.local(self.size)
        override = override or self.algorithms.get(collective)
        return select_algorithm(collective, nbytes, self.size, self._local_link, override)

    def record(
        self,
        collective: str,
        algo: str,
        nbytes: int,
        detail: str,
        seq: int,
        t0: float,
        ch: Channel,
        peer: int | None = None,
    ) -> dict[str, Any]:
        """Keep one record of a finished call, tell the observers, log one NCCL-style line.

        ``peer``: the other group rank of a send/recv (None for a collective).

        ``nbytes`` is the buffer size as nccl-tests counts it; ``bytes_sent`` what this
        rank's transport really sent for the call (algorithm-dependent, measured).
        """
        rec = dict(
            collective=collective,
            algorithm=algo,
            nbytes=nbytes,
            bytes_sent=ch.bytes_sent,
            seq=seq,
            start=t0,
            measured=time.perf_counter() - t0,
            nranks=self.size,
            thread=threading.get_ident(),
        )
        self.history.append(rec)
        for observe in self.observers:
            observe(rec)
        if _prof.active:  # sg.profiler records this call (one flag read when it is off)
            _prof.on_comm(self, rec, t0, peer=peer, predicted=_predicted(rec, _prof.topology))
        if self._debug:
            log.info(
                "NCCL INFO %s: opCount %x %s bytes %d nranks %d rank %d algo %s sent %d "
                "measured %.1f us",
                collective,
                seq,
                detail,
                nbytes,
                self.size,
                self.rank,
                algo,
                ch.bytes_sent,
                rec["measured"] * 1e6,
            )
        return rec

    # -- running one call ---------------------------------------------------------------------
    def _check_usable(self) -> None:
        if self._broken is not None:
            raise CommError(f"communicator is aborted after an earlier error: {self._broken}")

    def _maybe_drop(self) -> None:
        """Apply an injected 'drop this rank at call k' fault."""
        index = self.call_count
        self.call_count += 1
        if self.faults is None or not self.faults.drops(self.transport.rank, index):
            return
        self._broken = f"rank dropped by fault injection at call {index}"
        if self.faults.drop_mode == "hang":
            time.sleep(self.faults.hang_seconds)
        else:
            self.transport.close()
        raise RankDropped(f"rank {self.transport.rank} dropped at call {index} (fault injection)")

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
        except FingerprintMismatch as exc:
            self.mismatch(ch, exc)
        except (ControlArrived, PeerLost, WaitTimeout) as exc:
            self._fail(ch, exc)
        finally:
            ch.close()
        self.record(collective, algo, nbytes, detail, self.seq, t0, ch)
        return algo

    def pending_notice(self) -> Frame | None:
        """A failure notice a peer sent about an earlier call of this group or its send/recv."""
        return self.transport.mailbox.pending_control(self.tag)

    def mismatch(self, ch: Channel, exc: FingerprintMismatch) -> None:
        """A peer's frame belongs to another call: tell every peer, raise the same error."""
        frame = exc.frame
        message = (
            f"collective mismatch: rank {self.rank} called {ch.fingerprint} as call "
            f"#{ch.seq}, but rank {exc.peer} called {frame.fingerprint} as call #{frame.seq}. "
            "Every rank must call the same collectives, in the same order, with the same "
            "shapes and dtypes"
        )
        self._broken = message
        notice = Frame(MISMATCH, self.transport.rank, ch.tag, ch.seq, message, None)
        self.transport.send_control(self._others(), notice)
        raise CollectiveMismatch(message) from None

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

"""Collectives on arrays: the methods every higher API (NCCL-shaped, torch-shaped) calls.

A :class:`ProcessGroup` is a :class:`~sparkgrad.comms.communicator.Communicator` plus one
method per collective. Methods take NumPy or CuPy arrays and follow PyTorch's in-place
conventions: ``all_reduce``/``broadcast`` overwrite their argument, ``reduce`` overwrites
it on the root only, the others return a new array (or fill ``out=``). Layouts:

===============  ==========================  ==================================
collective       input (every rank)          output
===============  ==========================  ==================================
all_gather       ``x`` of shape ``s``        ``(n, *s)``: row ``i`` from rank ``i``
reduce_scatter   ``(n*m, ...)``              ``(m, ...)``: block ``r`` reduced
all_to_all       ``(n*m, ...)``              ``(n*m, ...)``: block ``i`` from rank ``i``
gather           ``x`` of shape ``s``        root: ``(n, *s)``; others: ``None``
scatter          root: ``(n, *s)``           ``out`` of shape ``s``
===============  ==========================  ==================================
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from sparkgrad.comms.algorithms import REGISTRY
from sparkgrad.comms.buffers import host_buffer, like
from sparkgrad.comms.channel import Channel, FingerprintMismatch
from sparkgrad.comms.communicator import Communicator
from sparkgrad.comms.framing import MISMATCH
from sparkgrad.comms.reduce_ops import ReduceOp, as_reduce_op, check_op_dtype, finish
from sparkgrad.comms.transport import P2P_TAG_BIT, ControlArrived, PeerLost, WaitTimeout
from sparkgrad.errors import CollectiveMismatch, CollectiveTimeout, CommError, ShapeError


def _detail(buf: np.ndarray, **extra: Any) -> str:
    parts = [f"shape={tuple(buf.shape)}", f"dtype={buf.dtype}"]
    parts += [f"{k}={v}" for k, v in extra.items()]
    return ", ".join(parts)


class ProcessGroup(Communicator):
    """A communicator with array collectives (see the module docstring for layouts)."""

    def _root(self, root: int) -> int:
        if not 0 <= root < self.size:
            raise CommError(f"expected a root rank in 0..{self.size - 1}, found {root}")
        return root

    def _split_rows(self, buf: np.ndarray, what: str) -> None:
        if buf.ndim == 0 or buf.shape[0] % self.size:
            raise ShapeError(
                f"{what}: expected the first dimension to be divisible by the group size "
                f"{self.size}, found shape {buf.shape}"
            )

    def all_reduce(self, array: Any, op: Any = ReduceOp.SUM, algorithm: str | None = None) -> Any:
        """Reduce ``array`` over all ranks, in place on every rank; returns ``array``."""
        op = as_reduce_op(op)
        buf, back = host_buffer(array)
        check_op_dtype(op, buf.dtype)
        flat = buf.reshape(-1)
        self.run(
            "all_reduce",
            _detail(buf, op=op.name),
            buf.nbytes,
            algorithm,
            lambda ch, algo: REGISTRY["all_reduce"][algo](ch, flat, op),
        )
        finish(op, flat, self.size)
        if back:
            back()
        return array

    def broadcast(self, array: Any, root: int = 0, algorithm: str | None = None) -> Any:
        """Copy the root's ``array`` into ``array`` on every rank; returns ``array``."""
        root = self._root(root)
        buf, back = host_buffer(array)
        flat = buf.reshape(-1)
        self.run(
            "broadcast",
            _detail(buf, root=root),
            buf.nbytes,
            algorithm,
            lambda ch, algo: REGISTRY["broadcast"][algo](ch, flat, root),
        )
        if back:
            back()
        return array

    def reduce(
        self, array: Any, root: int = 0, op: Any = ReduceOp.SUM, algorithm: str | None = None
    ) -> Any:
        """Reduce onto the root's ``array`` (in place there; other ranks keep theirs)."""
        root, op = self._root(root), as_reduce_op(op)
        buf, back = host_buffer(array)
        check_op_dtype(op, buf.dtype)
        flat = buf.reshape(-1) if self.rank == root else buf.reshape(-1).copy()
        self.run(
            "reduce",
            _detail(buf, op=op.name, root=root),
            buf.nbytes,
            algorithm,
            lambda ch, algo: REGISTRY["reduce"][algo](ch, flat, op, root),
        )
        if self.rank == root:
            finish(op, flat, self.size)
            if back:
                back()
        return array

    def all_gather(self, array: Any, out: Any = None, algorithm: str | None = None) -> Any:
        """``out[i]`` = rank ``i``'s ``array``; ``out`` has shape ``(n, *array.shape)``."""
        buf, _ = host_buffer(array)
        shape = (self.size, *buf.shape)
        target = out if out is not None else np.empty(shape, buf.dtype)
        res, back = host_buffer(target)
        if res.shape != shape or res.dtype != buf.dtype:
            raise ShapeError(
                f"all_gather: expected out of {shape} {buf.dtype}, found {res.shape} {res.dtype}"
            )
        flat = res.reshape(-1)
        flat[self.rank * buf.size : (self.rank + 1) * buf.size] = buf.reshape(-1)
        self.run(
            "all_gather",
            _detail(buf),
            res.nbytes,
            algorithm,
            lambda ch, algo: REGISTRY["all_gather"][algo](ch, flat),
        )
        if back:
            back()
        return target if out is not None else like(array, res)

    def reduce_scatter(
        self, array: Any, op: Any = ReduceOp.SUM, out: Any = None, algorithm: str | None = None
    ) -> Any:
        """Block ``r`` (of ``n`` along dim 0) of the reduced ``array``, on rank ``r``."""
        op = as_reduce_op(op)
        buf, _ = host_buffer(array)
        check_op_dtype(op, buf.dtype)
        self._split_rows(buf, "reduce_scatter")
        scratch = buf.reshape(-1).copy()
        self.run(
            "reduce_scatter",
            _detail(buf, op=op.name),
            buf.nbytes,
            algorithm,
            lambda ch, algo: REGISTRY["reduce_scatter"][algo](ch, scratch, op),
        )
        m = buf.size // self.size
        mine = scratch[self.rank * m : (self.rank + 1) * m]
        finish(op, mine, self.size)
        result = mine.reshape((buf.shape[0] // self.size, *buf.shape[1:]))
        return self._deliver(array, result, out)

    def all_to_all(self, array: Any, out: Any = None, algorithm: str | None = None) -> Any:
        """Block ``j`` (dim 0) goes to rank ``j``; block ``i`` of the result is rank ``i``'s."""
        buf, _ = host_buffer(array)
        self._split_rows(buf, "all_to_all")
        res = np.empty_like(buf)
        send, flat = buf.reshape(-1), res.reshape(-1)
        self.run(
            "all_to_all",
            _detail(buf),
            buf.nbytes,
            algorithm,
            lambda ch, algo: REGISTRY["all_to_all"][algo](ch, send, flat),
        )
        return self._deliver(array, res, out)

    def gather(self, array: Any, root: int = 0, algorithm: str | None = None) -> Any:
        """On the root, ``(n, *array.shape)`` with row ``i`` from rank ``i``; ``None`` elsewhere."""
        root = self._root(root)
        buf, _ = host_buffer(array)
        res = np.empty((self.size, *buf.shape), buf.dtype) if self.rank == root else None
        flat = res.reshape(-1) if res is not None else None
        self.run(
            "gather",
            _detail(buf, root=root),
            buf.nbytes * self.size,
            algorithm,
            lambda ch, algo: REGISTRY["gather"][algo](ch, buf.reshape(-1), flat, root),
        )
        return like(array, res) if res is not None else None

    def scatter(
        self, out: Any, source: Any = None, root: int = 0, algorithm: str | None = None
    ) -> Any:
        """Fill ``out`` with row ``rank`` of the root's ``source`` (shape ``(n, *out.shape)``)."""
        root = self._root(root)
        res, back = host_buffer(out)
        send = None
        if self.rank == root:
            if source is None:
                raise CommError("scatter: the root must pass source=")
            src, _ = host_buffer(source)
            if src.shape != (self.size, *res.shape) or src.dtype != res.dtype:
                raise ShapeError(
                    f"scatter: expected source of {(self.size, *res.shape)} "
                    f"{res.dtype}, found {src.shape} {src.dtype}"
                )
            send = src.reshape(-1)
        flat = res.reshape(-1)
        self.run(
            "scatter",
            _detail(res, root=root),
            res.nbytes * self.size,
            algorithm,
            lambda ch, algo: REGISTRY["scatter"][algo](ch, send, flat, root),
        )
        if back:
            back()
        return out

    def barrier(self) -> None:
        """Return once every rank of the group has entered the barrier."""
        self.run("barrier", "", 0, None, lambda ch, algo: REGISTRY["barrier"][algo](ch))

    def _deliver(self, array: Any, result: np.ndarray, out: Any) -> Any:
        if out is None:
            return like(array, np.ascontiguousarray(result))
        res, back = host_buffer(out)
        if res.shape != result.shape or res.dtype != result.dtype:
            raise ShapeError(
                f"expected out of {result.shape} {result.dtype}, found {res.shape} {res.dtype}"
            )
        res[...] = result
        if back:
            back()
        return out

    # -- point to point -----------------------------------------------------------------------
    def _p2p(self, kind: str, array: Any, peer: int) -> Any:
        self._check_usable()
        if not 0 <= peer < self.size or peer == self.rank:
            raise CommError(
                f"{kind}: expected a peer rank in 0..{self.size - 1} other than "
                f"{self.rank}, found {peer}"
            )
        buf, back = host_buffer(array, fill=kind == "send")
        if kind == "send":
            back = None  # sending leaves the array as it was: nothing to write back
        key = (kind, peer)
        self._p2p_seq[key] += 1
        fingerprint = f"send/recv({_detail(buf)})"
        t0 = time.perf_counter()
        ch = Channel(
            self,
            self._p2p_seq[key],
            fingerprint,
            time.monotonic() + self.timeout,
            self.tag | P2P_TAG_BIT,
        )
        try:
            pending = self.pending_notice()  # e.g. our last send did not match its recv
            if pending is not None:
                raise ControlArrived(pending)
            if kind == "send":
                ch.send(peer, buf.reshape(-1))
            else:
                ch.recv_into(peer, buf.reshape(-1))
        except FingerprintMismatch as exc:
            self.mismatch(ch, exc)
        except (ControlArrived, PeerLost, WaitTimeout) as exc:
            if isinstance(exc, ControlArrived) and exc.frame.kind == MISMATCH:
                self._broken = exc.frame.fingerprint
                raise CollectiveMismatch(
                    f"{exc.frame.fingerprint} (reported by rank {exc.frame.src})"
                ) from None
            self._broken = f"{kind} with rank {peer} failed"
            raise CollectiveTimeout(
                f"{kind} (p2p #{ch.seq} with rank {peer}, {fingerprint}) failed on rank "
                f"{self.rank}: missing ranks [{peer}] ({exc})"
            ) from None
        if back:
            back()
        self.record(kind, "p2p", buf.nbytes, _detail(buf, peer=peer), ch.seq, t0, ch, peer=peer)
        return array

    def send(self, array: Any, peer: int) -> None:
        """Send ``array`` to ``peer`` (returns once the bytes are handed to the transport)."""
        self._p2p("send", array, peer)

    def recv(self, out: Any, peer: int) -> Any:
        """Receive into ``out`` from ``peer`` (same shape and dtype as sent); returns ``out``."""
        return self._p2p("recv", out, peer)

    def new_group(self, ranks: list[int]) -> ProcessGroup | None:
        """A sub-group of this group's ``ranks`` (every rank of this group must call it).

        Returns ``None`` on ranks outside the sub-group, as PyTorch does.
        """
        counter = getattr(self.transport, "groups_made", 0) + 1
        self.transport.groups_made = counter
        ranks = [int(r) for r in ranks]
        if any(not 0 <= r < self.size for r in ranks) or len(set(ranks)) != len(ranks):
            raise CommError(
                f"new_group: expected distinct ranks in 0..{self.size - 1}, found {ranks}"
            )
        if self.rank not in ranks:
            return None
        child = ProcessGroup(
            self.transport,
            [self.ranks[r] for r in ranks],
            tag=counter,
            timeout=self.timeout,
            algorithms=self.algorithms,
            segment_bytes=self.segment_bytes,
            max_frame_bytes=self.max_frame_bytes,
            faults=self.faults,
        )
        child.observers = self.observers  # the same list: an observer added later sees both
        self.subgroups.append(child)
        return child

    def calls(self) -> list[dict[str, Any]]:
        """The records of this group's calls and of every group made from it, by start."""
        records = list(self.history)
        for g in self.subgroups:
            records.extend(g.calls())
        return sorted(records, key=lambda r: r["start"])

    def reset_history(self) -> None:
        """Forget the records of this group and of every group made from it."""
        self.history.clear()
        for g in self.subgroups:
            g.reset_history()

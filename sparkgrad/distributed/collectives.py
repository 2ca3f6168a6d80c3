"""``torch.distributed``-shaped collectives over sparkgrad's process groups.

Every function takes sparkgrad :class:`~sparkgrad.autodiff.tensor.Tensor` objects (their
``.array`` is updated in place, as PyTorch updates tensors) or plain NumPy/CuPy arrays.
``src``/``dst`` are *global* ranks, as in PyTorch, also for sub-groups. With
``async_op=True`` the call returns a :class:`~sparkgrad.distributed.work.Work` handle.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np

from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.comms.buffers import host_buffer
from sparkgrad.comms.reduce_ops import ReduceOp
from sparkgrad.distributed.state import Group, resolve
from sparkgrad.distributed.work import Work
from sparkgrad.errors import CommError, ShapeError


def _arr(t: Any) -> Any:
    """The array behind a Tensor, or the array itself."""
    return t.array if isinstance(t, Tensor) else t


def _assign(dst: Any, value: Any) -> None:
    """Copy ``value`` into ``dst`` (Tensor or array) in place, keeping ``dst``'s shape."""
    arr = _arr(dst)
    if arr.size != value.size:
        raise ShapeError(f"expected a tensor of {value.size} elements, found shape {arr.shape}")
    if isinstance(arr, np.ndarray):
        arr[...] = np.asarray(value).reshape(arr.shape)
    else:  # CuPy: move the host result to the device
        import cupy

        arr[...] = cupy.asarray(value).reshape(arr.shape)


def _go(group: Group | None, fn: Callable[[Group], Any], async_op: bool) -> Work | None:
    g = resolve(group)
    if async_op:
        return g.queue.submit(lambda: fn(g))
    g.queue.drain()
    fn(g)
    return None


def all_reduce(
    tensor: Any, op: Any = ReduceOp.SUM, group: Group | None = None, async_op: bool = False
) -> Work | None:
    """Reduce ``tensor`` over the group, in place on every rank."""
    return _go(group, lambda g: g.pg.all_reduce(_arr(tensor), op), async_op)


def broadcast(
    tensor: Any, src: int, group: Group | None = None, async_op: bool = False
) -> Work | None:
    """Copy global rank ``src``'s ``tensor`` into ``tensor`` on every rank."""
    return _go(group, lambda g: g.pg.broadcast(_arr(tensor), g.group_rank(src)), async_op)


def reduce(
    tensor: Any,
    dst: int,
    op: Any = ReduceOp.SUM,
    group: Group | None = None,
    async_op: bool = False,
) -> Work | None:
    """Reduce onto global rank ``dst``'s ``tensor`` (in place there)."""
    return _go(group, lambda g: g.pg.reduce(_arr(tensor), g.group_rank(dst), op), async_op)


def all_gather(
    tensor_list: list, tensor: Any, group: Group | None = None, async_op: bool = False
) -> Work | None:
    """``tensor_list[i]`` receives rank ``i``'s ``tensor``."""

    def run(g: Group) -> None:
        if len(tensor_list) != g.size():
            raise CommError(
                f"all_gather: expected {g.size()} output tensors, found {len(tensor_list)}"
            )
        rows = g.pg.all_gather(_arr(tensor))
        for dst, row in zip(tensor_list, rows):
            _assign(dst, row)

    return _go(group, run, async_op)


def all_gather_into_tensor(
    output_tensor: Any, input_tensor: Any, group: Group | None = None, async_op: bool = False
) -> Work | None:
    """``output_tensor`` (``n`` times the input along dim 0, or stacked) gets every input."""
    return _go(
        group, lambda g: _assign(output_tensor, g.pg.all_gather(_arr(input_tensor))), async_op
    )


def reduce_scatter(
    output: Any,
    input_list: list,
    op: Any = ReduceOp.SUM,
    group: Group | None = None,
    async_op: bool = False,
) -> Work | None:
    """``output`` on rank ``r`` = the reduction of every rank's ``input_list[r]``."""

    def run(g: Group) -> None:
        stacked = np.stack([host_buffer(_arr(t))[0] for t in input_list])
        _assign(output, g.pg.reduce_scatter(stacked, op))

    return _go(group, run, async_op)


def reduce_scatter_tensor(
    output: Any,
    input: Any,
    op: Any = ReduceOp.SUM,
    group: Group | None = None,
    async_op: bool = False,
) -> Work | None:
    """``output`` on rank ``r`` = block ``r`` (dim 0) of the reduced ``input``."""
    return _go(group, lambda g: _assign(output, g.pg.reduce_scatter(_arr(input), op)), async_op)


def all_to_all(
    output_tensor_list: list,
    input_tensor_list: list,
    group: Group | None = None,
    async_op: bool = False,
) -> Work | None:
    """``input_tensor_list[j]`` goes to rank ``j``; ``output_tensor_list[i]`` comes from ``i``."""

    def run(g: Group) -> None:
        stacked = np.stack([host_buffer(_arr(t))[0] for t in input_tensor_list])
        for dst, row in zip(output_tensor_list, g.pg.all_to_all(stacked)):
            _assign(dst, row)

    return _go(group, run, async_op)


def all_to_all_single(
    output: Any,
    input: Any,
    output_split_sizes: Any = None,
    input_split_sizes: Any = None,
    group: Group | None = None,
    async_op: bool = False,
) -> Work | None:
    """Equal blocks of ``input`` (dim 0) to every rank; uneven splits are not supported."""
    if output_split_sizes is not None or input_split_sizes is not None:
        raise CommError("all_to_all_single: uneven split sizes are not supported; use equal blocks")
    return _go(group, lambda g: _assign(output, g.pg.all_to_all(_arr(input))), async_op)


def gather(
    tensor: Any,
    gather_list: list | None = None,
    dst: int = 0,
    group: Group | None = None,
    async_op: bool = False,
) -> Work | None:
    """On global rank ``dst``, ``gather_list[i]`` receives rank ``i``'s ``tensor``."""

    def run(g: Group) -> None:
        rows = g.pg.gather(_arr(tensor), g.group_rank(dst))
        if rows is not None:
            if gather_list is None or len(gather_list) != g.size():
                raise CommError(f"gather: dst needs a gather_list of {g.size()} tensors")
            for out, row in zip(gather_list, rows):
                _assign(out, row)

    return _go(group, run, async_op)


def scatter(
    tensor: Any,
    scatter_list: list | None = None,
    src: int = 0,
    group: Group | None = None,
    async_op: bool = False,
) -> Work | None:
    """``tensor`` on rank ``i`` receives ``scatter_list[i]`` of global rank ``src``."""

    def run(g: Group) -> None:
        source = None
        if scatter_list is not None and g.rank() == g.group_rank(src):
            source = np.stack([host_buffer(_arr(t))[0] for t in scatter_list])
        g.pg.scatter(_arr(tensor), source, g.group_rank(src))

    return _go(group, run, async_op)


def barrier(
    group: Group | None = None, async_op: bool = False, device_ids: Any = None
) -> Work | None:
    """Return once every rank of the group has called ``barrier``."""
    return _go(group, lambda g: g.pg.barrier(), async_op)


def monitored_barrier(
    group: Group | None = None,
    timeout: float | timedelta | None = None,
    wait_all_ranks: bool = False,
) -> None:
    """A barrier whose timeout error names the ranks that did not arrive."""
    g = resolve(group)
    g.queue.drain()
    saved = g.pg.timeout
    if timeout is not None:
        g.pg.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
    try:
        g.pg.barrier()
    finally:
        g.pg.timeout = saved


def send(tensor: Any, dst: int, group: Group | None = None, tag: int = 0) -> None:
    """Send ``tensor`` to global rank ``dst``."""
    g = resolve(group)
    g.pg.send(_arr(tensor), g.group_rank(dst))


def recv(tensor: Any, src: int | None = None, group: Group | None = None, tag: int = 0) -> int:
    """Receive into ``tensor`` from global rank ``src``; returns ``src``."""
    if src is None:
        raise CommError("recv: src=None (receive from any rank) is not supported; name the sender")
    g = resolve(group)
    g.recv_queue.drain()
    g.pg.recv(_arr(tensor), g.group_rank(src))
    return src


def isend(tensor: Any, dst: int, group: Group | None = None, tag: int = 0) -> Work:
    """Send without waiting for the receiver (the bytes are handed over before returning)."""
    send(tensor, dst, group, tag)
    return Work.done()


def irecv(tensor: Any, src: int | None = None, group: Group | None = None, tag: int = 0) -> Work:
    """Receive in the background; ``wait()`` on the handle before reading ``tensor``."""
    if src is None:
        raise CommError("irecv: src=None (receive from any rank) is not supported; name the sender")
    g = resolve(group)
    return g.recv_queue.submit(lambda: g.pg.recv(_arr(tensor), g.group_rank(src)))

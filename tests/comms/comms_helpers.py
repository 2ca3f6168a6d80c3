"""Shared helpers of the comms tests: exact-sum inputs, NumPy references, launchers.

nccl-tests checks collectives with inputs chosen so that every float sum is *exact*: small
integers, whose sums and products are representable in float32. Then the order in which
an algorithm adds things cannot change a bit, and the result must equal a NumPy
reference exactly — 0 wrong elements, not "close enough".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sparkgrad.comms.algorithms import REGISTRY
from sparkgrad.comms.process_group import ProcessGroup
from sparkgrad.comms.reduce_ops import ReduceOp
from sparkgrad.comms.spawn import current_launch, run_threads

DTYPES = [np.float32, np.float64, np.int32, np.int64]
OPS = [ReduceOp.SUM, ReduceOp.PRODUCT, ReduceOp.MIN, ReduceOp.MAX, ReduceOp.AVG]
COUNTS = [0, 3, 1031]  # empty, fewer elements than ranks, odd and not divisible


def exact_input(rank: int, count: int, dtype: Any, op: ReduceOp = ReduceOp.SUM) -> np.ndarray:
    """Small integers (as ``dtype``) whose sums/products over <= 5 ranks are exact."""
    rng = np.random.default_rng(1000 + 7 * rank + count)
    if op is ReduceOp.PRODUCT:
        return rng.choice(np.array([-2, -1, 1, 2]), size=count).astype(dtype)
    return rng.integers(-8, 9, size=count).astype(dtype)


def reference(op: ReduceOp, inputs: list[np.ndarray]) -> np.ndarray:
    """What a reduction of ``inputs`` must give, computed directly with NumPy."""
    stack = np.stack(inputs)
    if op is ReduceOp.SUM:
        return stack.sum(axis=0, dtype=stack.dtype)
    if op is ReduceOp.PRODUCT:
        return stack.prod(axis=0, dtype=stack.dtype)
    if op is ReduceOp.MIN:
        return stack.min(axis=0)
    if op is ReduceOp.MAX:
        return stack.max(axis=0)
    return stack.sum(axis=0, dtype=stack.dtype) / stack.dtype.type(len(inputs))


def floating(dtype: Any) -> bool:
    """float16/32/64, and ml_dtypes' bfloat16 (NumPy calls its kind "V")."""
    return np.dtype(dtype).kind == "f" or np.dtype(dtype).name == "bfloat16"


def wrong(actual: Any, expected: np.ndarray) -> int:
    """nccl-tests' ``#wrong``: elements that differ (shapes and dtypes must match too)."""
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    return int(np.count_nonzero(actual != expected))


def run_group(nranks: int, body: Any, **options: Any) -> list[Any]:
    """``body(pg)`` on ``nranks`` thread ranks, each with its own ``ProcessGroup``."""
    options.setdefault("timeout", 10.0)

    def fn(rank: int, world_size: int) -> Any:
        pg = ProcessGroup(current_launch().world.transport(rank), **options)
        return body(pg)

    return run_threads(fn, nranks)


def check_every_collective(pg: ProcessGroup, dtypes: list = DTYPES, counts: list = COUNTS) -> int:
    """Run every collective x algorithm x dtype x count on ``pg``; return the #wrong total.

    Each rank computes every rank's input itself (they are deterministic), so it knows
    the reference without any communication.
    """
    n, r = pg.size, pg.rank
    bad = 0
    for dtype in dtypes:
        for count in counts:
            ins = [exact_input(i, count, dtype) for i in range(n)]
            for op in OPS:
                if op is ReduceOp.AVG and not floating(dtype):
                    continue
                xs = [exact_input(i, count, dtype, op) for i in range(n)]
                for algo in REGISTRY["all_reduce"]:
                    buf = xs[r].copy()
                    pg.all_reduce(buf, op, algorithm=algo)
                    bad += wrong(buf, reference(op, xs))
                for algo in REGISTRY["reduce"]:
                    root = (count + 1) % n
                    buf = xs[r].copy()
                    pg.reduce(buf, root, op, algorithm=algo)
                    bad += wrong(buf, reference(op, xs) if r == root else xs[r])
                rows = [exact_input(i, count * n, dtype, op) for i in range(n)]
                out = pg.reduce_scatter(rows[r].copy(), op)
                bad += wrong(out, reference(op, rows)[r * count : (r + 1) * count])
            for algo in REGISTRY["broadcast"]:
                root = count % n
                buf = ins[r].copy()
                pg.broadcast(buf, root, algorithm=algo)
                bad += wrong(buf, ins[root])
            bad += wrong(pg.all_gather(ins[r]), np.stack(ins))
            blocks = [exact_input(i, count * n, dtype).reshape(n, count) for i in range(n)]
            bad += wrong(pg.all_to_all(blocks[r]), np.stack([b[r] for b in blocks]))
            gathered = pg.gather(ins[r], root=n - 1)
            if r == n - 1:
                bad += wrong(gathered, np.stack(ins))
            out = np.empty(count, dtype)
            pg.scatter(out, blocks[0] if r == 0 else None, root=0)
            bad += wrong(out, blocks[0][r])
            if n > 1:  # a ring of send/recv
                got = np.empty(count, dtype)
                pg.send(ins[r], (r + 1) % n)
                pg.recv(got, (r - 1) % n)
                bad += wrong(got, ins[(r - 1) % n])
            pg.barrier()
    return bad


def tcp_matrix_worker(rank: int, world_size: int) -> int:
    """Process entry point for the TCP matrix test (env:// rendezvous set by the launcher)."""
    from sparkgrad.comms.rendezvous import tcp_rendezvous

    transport = tcp_rendezvous("env://", timeout=20)
    pg = ProcessGroup(transport, timeout=20, segment_bytes=4096)
    try:
        return check_every_collective(pg, counts=[3, 20000])
    finally:
        transport.close()


def tcp_sixteen_bit_worker(rank: int, world_size: int) -> int:
    """Every collective in float16 and bfloat16 over TCP (ZeRO's 2-byte params and grads);
    50000 elements make frames over the transport's one-write limit (64 KiB)."""
    from ml_dtypes import bfloat16

    from sparkgrad.comms.rendezvous import tcp_rendezvous

    transport = tcp_rendezvous("env://", timeout=20)
    pg = ProcessGroup(transport, timeout=20)
    try:
        return check_every_collective(pg, dtypes=[np.float16, bfloat16], counts=[3, 50000])
    finally:
        transport.close()


def tcp_tutorial(rank: int, size: int) -> list:
    """(Lives here, not in the test module, so the child processes need not import torch.)

    The tutorial's own init: MASTER_ADDR/MASTER_PORT in the environment, backend "gloo"."""
    import sparkgrad as sg
    import sparkgrad.distributed as dist

    dist.init_process_group("gloo", rank=rank, world_size=size)
    tensor = sg.tensor([float(rank + 1)] * 3)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    dist.barrier()
    dist.destroy_process_group()
    return tensor.array.tolist()

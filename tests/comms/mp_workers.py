"""Functions that ``sparkgrad.multiprocessing.spawn`` runs in child processes (importable).

They follow PyTorch's "Writing Distributed Applications" tutorial: the parent sets
``MASTER_ADDR``/``MASTER_PORT``, each child joins with ``init_process_group("gloo", ...)``
and its rank, then runs collectives and point-to-point calls. Results go to one
``sg.save`` file per rank (spawn drops return values, as PyTorch's does).
"""

from __future__ import annotations

import os
import time

import sparkgrad as sg
import sparkgrad.distributed as dist


def tutorial_run(rank: int, size: int, out_dir: str, init_method: str | None) -> None:
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=size)
    total = sg.tensor([rank + 1.0, 10.0 * (rank + 1), -float(rank)])
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    biggest = sg.tensor([float(rank), -float(rank)])
    dist.all_reduce(biggest, op=dist.reduce_op.MAX)  # the deprecated alias still works

    # blocking point-to-point, as the tutorial's first run(): rank 0 sends, rank 1 receives
    p2p = sg.ones(3) * 7.0 if rank == 0 else sg.zeros(3)
    if rank == 0:
        dist.send(tensor=p2p, dst=1)
    else:
        dist.recv(tensor=p2p, src=0)
    # non-blocking, the other way round
    back = sg.tensor([42.0, rank]) if rank == 1 else sg.zeros(2)
    req = dist.isend(tensor=back, dst=0) if rank == 1 else dist.irecv(tensor=back, src=1)
    req.wait()

    group = dist.new_group([0, 1])
    ones = sg.ones(1)
    dist.all_reduce(ones, op=dist.ReduceOp.SUM, group=group)
    sg.save(
        {
            "sum": total,
            "max": biggest,
            "p2p": p2p,
            "back": back,
            "group": ones,
            "rank": dist.get_rank(),
            "world": dist.get_world_size(),
            "backend": dist.get_backend(),
            "secret": os.environ.get("SPARKGRAD_SECRET", ""),
        },
        os.path.join(out_dir, f"rank{rank}.pt"),
    )
    dist.destroy_process_group()


def failing_run(rank: int, message: str) -> None:
    if rank == 1:
        raise ValueError(message)
    time.sleep(120)  # the parent must stop this one once rank 1 failed


def exiting_run(rank: int, code: int) -> None:
    os._exit(code if rank == 0 else 0)


def record_secret(rank: int, out_dir: str) -> None:
    with open(os.path.join(out_dir, f"secret{rank}"), "w") as f:
        f.write(os.environ.get("SPARKGRAD_SECRET", ""))


def cuda_run(rank: int, size: int, out_dir: str) -> None:
    """The tutorial's collectives on ``device="cuda"`` tensors, in a child process (which
    finds CuPy, or the stand-in through ``PYTHONPATH``); results saved on the CPU."""
    import cupy

    dist.init_process_group("gloo", rank=rank, world_size=size)
    total = sg.tensor([rank + 1.0, 10.0 * (rank + 1)], device="cuda")
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    rows = [sg.zeros(2, device="cuda") for _ in range(size)]
    dist.all_gather(rows, sg.full((2,), float(rank), device="cuda"))
    p2p = sg.ones(3, device="cuda") * 7.0 if rank == 0 else sg.zeros(3, device="cuda")
    if rank == 0:
        dist.send(tensor=p2p, dst=1)
    else:
        dist.recv(tensor=p2p, src=0)
    stays = all(isinstance(t.array, cupy.ndarray) for t in (total, p2p, *rows))
    fake = bool(getattr(cupy, "IS_SPARKGRAD_FAKE", False))
    sg.save(
        {"sum": total.cpu(), "rows": [r.cpu() for r in rows], "p2p": p2p.cpu(),
         "on_gpu": stays, "fake": fake},
        os.path.join(out_dir, f"cuda{rank}.pt"),
    )  # fmt: skip
    dist.destroy_process_group()

"""One TCP rank of the simulator's validation on this machine, a process of its own.

:func:`sparkgrad.simulate.local.run_tcp` starts ``world`` of these on 127.0.0.1 (through
:func:`sparkgrad.benchmark.rank_processes.run_ranks`)::

    python -m sparkgrad.simulate.local_worker --rank 0 --world-size 4 --port 29500 \\
        --job job.json --out rank0.json

Each process has one BLAS thread and, with more than one rank, joins sparkgrad's ``tcp``
process group: real sockets, and no GIL shared with the other ranks (thread-ranks share
one). The job, a JSON file, is one row of the validation, ``{"strategy": "data",
"options": {...}, "hidden": [256, 256, 256], "batch": 256, "steps": 8, "repeats": 3}``;
the rank runs :func:`~.local_case.run_case_on_rank` on it and writes the record as JSON,
to a temporary name then renamed. Nothing is pickled.
"""

from __future__ import annotations

import argparse
import json


def main(argv: list[str] | None = None) -> None:
    import sparkgrad.distributed as dist
    from sparkgrad.autodiff.profiler.trace import write_json_atomic
    from sparkgrad.simulate.local_case import run_case_on_rank

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--world-size", type=int, required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--job", required=True, help="the row, a JSON file")
    p.add_argument("--out", required=True, help="where this rank writes its JSON record")
    args = p.parse_args(argv)
    with open(args.job, encoding="utf-8") as f:
        job = json.load(f)
    rank, world = args.rank, args.world_size
    pg = None
    if world > 1:
        init = f"tcp://127.0.0.1:{args.port}"
        dist.init_process_group("tcp", init_method=init, rank=rank, world_size=world)
        pg = dist.state.default_group().pg
    try:
        record = run_case_on_rank(job, rank, world, pg)
    finally:
        if world > 1:
            dist.destroy_process_group()
    write_json_atomic(args.out, record)


if __name__ == "__main__":
    main()

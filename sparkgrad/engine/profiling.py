"""``--profile DIR``: profile every rank's training and write the traces.

Each rank runs :class:`sparkgrad.profiler.profile` around ``Trainer.fit`` (one
``ProfilerStep#N`` per optimizer step), then:

1. writes ``DIR/trace.rank<R>.json`` (its own ops, optimizer steps and collectives);
2. sends its trace to rank 0 through the run's own process group (an ``all_gather`` of
   the lengths, then a ``gather`` of the JSON bytes, padded to the longest);
3. rank 0 writes ``DIR/trace.merged.json``: one process per rank with a compute and a
   communication thread, flow arrows joining each send to its recv, and the predicted
   timeline on ``--sim-topology`` on a second set of processes
   (:func:`sparkgrad.autodiff.profiler.merge.merge_traces`).

**Clock alignment.** Just before the profiler starts, every rank enters a barrier on the
run's process group; its trace's ts 0 is the moment it left it. The ranks leave a
barrier within about one message latency of each other (tens of microseconds on
loopback), which bounds the misalignment on a real cluster, where each host has its own
clock. On one host (a local Spark master, ``local-cluster``) the ranks share the kernel's
monotonic clock, and the merge removes even that skew exactly (``otherData.clock`` in the
merged trace says which method was used and how much skew it removed).

The gathering collectives run after the profiler has stopped, so they are not in the
traces; they do appear in the run's communication totals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sparkgrad.autodiff.profiler import hooks, profile
from sparkgrad.autodiff.profiler.merge import merge_traces
from sparkgrad.autodiff.profiler.trace import write_json_atomic
from sparkgrad.errors import ConfigError


def rank_trace_path(directory: str | Path, rank: int) -> Path:
    return Path(directory) / f"trace.rank{rank}.json"


def merged_trace_path(directory: str | Path) -> Path:
    return Path(directory) / "trace.merged.json"


class RunProfiler:
    """The profiler of one rank of a run (``ctx``: the rank's context, None for one process)."""

    def __init__(self, directory: str, ctx: Any, topology: str | None = None) -> None:
        if topology is not None:  # collectives are priced on --sim-topology
            hooks.topology = topology
        self.directory = Path(directory)
        self.ctx = ctx
        self.rank = ctx.rank if ctx is not None else 0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"--profile {directory}: cannot create the directory ({exc.strerror or exc})"
            ) from None
        self.prof = profile(record_shapes=True, rank=self.rank)

    def start(self) -> RunProfiler:
        if self.ctx is not None:
            self.ctx.pg.barrier()  # clock alignment: ts 0 = leaving this barrier (module doc)
        self.prof.start()
        return self

    def on_step(self, trainer: Any, step: int, loss: float) -> None:
        """A ``Trainer`` step callback: one ``ProfilerStep#N`` per optimizer step."""
        self.prof.step()

    def finish(self) -> Path | None:
        """Stop, write this rank's trace; rank 0 also writes the merged one (returned)."""
        self.prof.stop()
        trace = self.prof.trace()
        write_json_atomic(rank_trace_path(self.directory, self.rank), trace)
        traces = [trace] if self.ctx is None else self._gather(trace)
        if traces is None:
            return None
        path = merged_trace_path(self.directory)
        write_json_atomic(path, merge_traces(traces))
        return path

    def _gather(self, trace: dict) -> list[dict] | None:
        """Every rank's trace on rank 0 (None on the others), over the run's process group."""
        pg = self.ctx.pg
        data = np.frombuffer(json.dumps(trace, allow_nan=False).encode(), dtype=np.uint8)
        lengths = pg.all_gather(np.array([data.size], dtype=np.int64)).reshape(-1)
        padded = np.zeros(int(lengths.max()), dtype=np.uint8)
        padded[: data.size] = data
        rows = pg.gather(padded, root=0)
        if rows is None:
            return None
        return [json.loads(bytes(row[:n])) for row, n in zip(rows, lengths.tolist())]

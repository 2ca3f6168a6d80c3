"""What one synced backward of :class:`~sparkgrad.parallel.DataParallel` looked like.

DDP's whole trick is *overlap*: a bucket's all_reduce starts while backward is still
computing the gradients of earlier layers. :class:`StepTimeline` makes that visible:

- ``events``: the order things happened in, e.g. ``("grad", "2.bias")``,
  ``("launch", 0)``, ``("grad", "0.weight")``, ... -- a launch that comes before the last
  ``"grad"`` event is communication that overlapped computation;
- ``buckets``: per bucket, when it was launched (seconds after backward reached the
  model), its size, and how long the end of backward had to wait for it.

``print(ddp.stats)`` shows it as a small table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BucketTiming:
    """One bucket's all_reduce in one step."""

    index: int
    num_params: int
    nbytes: int
    launch_s: float  # seconds from the start of backward to the launch
    wait_s: float = 0.0  # seconds the end of backward blocked on this bucket


@dataclass
class StepTimeline:
    """The latest synced backward: events in order and per-bucket timings."""

    events: list[tuple[str, Any]] = field(default_factory=list)
    buckets: list[BucketTiming] = field(default_factory=list)
    backward_s: float = 0.0  # from the start of backward to the last parameter gradient
    total_s: float = 0.0  # from the start of backward to the averaged gradients in p.grad

    def launched_before_last_grad(self) -> list[int]:
        """Indices of the buckets whose all_reduce started before the last gradient arrived."""
        last_grad = max(
            (i for i, (kind, _) in enumerate(self.events) if kind == "grad"), default=-1
        )
        return [
            what for i, (kind, what) in enumerate(self.events) if kind == "launch" and i < last_grad
        ]

    def __str__(self) -> str:
        lines = [
            f"backward {self.backward_s * 1e3:.3f} ms, grads averaged after "
            f"{self.total_s * 1e3:.3f} ms",
            f"{'bucket':>6} {'params':>6} {'bytes':>10} {'launch ms':>10} {'wait ms':>8}",
        ]
        for b in self.buckets:
            lines.append(
                f"{b.index:>6} {b.num_params:>6} {b.nbytes:>10} "
                f"{b.launch_s * 1e3:>10.3f} {b.wait_s * 1e3:>8.3f}"
            )
        return "\n".join(lines)

"""Chapter 4 exercise — DDP's bucket hook: reduce gradients while backward still runs.

``DataParallel`` (``sparkgrad/parallel/data/data_parallel.py``, PyTorch's DDP) packs the
parameters into *buckets* — in reverse order, because backward produces the last layer's
gradients first — and registers a hook on every parameter that fires once its ``.grad``
is final for this backward. You write what that hook does. What you have:

- ``bucket, position = ddp._where[id(p)]``: the bucket ``p`` belongs to and its place in it;
- ``bucket.fill(position)``: copy ``p.grad`` into the bucket's flat buffer (one gradient
  less missing); ``bucket.ready``: every member's gradient is in;
- ``ddp.buckets``: all buckets, in launch order; ``ddp._next_bucket``: the index of the
  next bucket to launch (0 after each forward);
- ``ddp._launch(bucket)``: start the bucket's ``all_reduce(AVG)`` *asynchronously*: it
  travels while backward computes the earlier layers;
- ``ddp._finalize()``: wait for every launched bucket and copy the averages back into
  each ``p.grad`` — once all buckets are launched, so that ``loss.backward()`` returns
  with averaged gradients;
- ``ddp._ready``: the set of ``id(p)`` whose gradient arrived in this backward (add to
  it: DataParallel's checks for unused parameters read it).

The one rule that makes it correct on many ranks: buckets launch **strictly in index
order**, never just "whichever is ready", so that every rank issues the same sequence
of collectives. (Here the order in which gradients arrive is the same on every rank, but
in general it is not.)

Check it: ``python -m pytest -m exercise_ddp_hook --learner``.
"""

from __future__ import annotations

from typing import Any


def mark_ready(ddp: Any, p: Any) -> None:
    """``p``'s gradient is final: put it in its bucket, launch what can go, finish at the end.

    1. Note ``p`` as ready and copy its gradient into its bucket.
    2. While the next bucket to launch is ready: launch it and move on to the next.
       (Only the next one in order: bucket 2 may be full while bucket 1 still waits.)
    3. When every bucket has been launched, wait for them and copy the averages back.
    """
    raise NotImplementedError("exercise: mark_ready in exercises/ch04_ddp_bucket_hook.py")

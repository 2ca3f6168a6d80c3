"""Hogwild!: many workers update the same weights with no lock at all — and it still works.

Niu, Recht, Ré and Wright (2011) asked what happens if parallel SGD simply drops the
lock: every worker reads the shared weights, computes a gradient and writes
``w -= lr * g`` into the shared vector while the others do the same. Two things can go
wrong, and both are rare when updates are **sparse**:

- *a lost update*: two workers read the same coordinate, both subtract, and one write
  overwrites the other (``w[i] -= a`` and ``w[i] -= b`` give ``w - a`` instead of
  ``w - a - b``);
- *a torn read*: a worker reads some coordinates before another worker's update and some
  after, and computes its gradient at a point that never existed.

If each gradient touches only a few coordinates (a sparse linear model, an embedding
table where a batch sees a few rows, the first layer of an MLP whose input pixels are
mostly zero: the gradient of ``W1[:, j]`` is zero for every background pixel ``j``), two
concurrent updates rarely touch the same coordinate, so a collision is rare and the
error it makes is one small gradient term. The paper proves that SGD then converges at
nearly the serial rate, with a linear speed-up in the number of workers, as long as the
overlap between updates (and the delay between read and write) stays small. Dense
updates collide on every coordinate: they still converge in practice for small learning
rates, but the guarantee is gone, and the lost updates show up as slower progress per
sample.

Here, two ways to share the weights:

- **one host: shared memory.** :class:`SharedWeights` is one flat float32 vector in a
  ``multiprocessing.shared_memory`` block; every worker process (or thread) binds its
  model's parameters to it (:func:`~.flat_params.bind`), and each worker's *own*
  optimizer (its momentum or Adam moments are private, as in PyTorch's ``mnist_hogwild``
  example, where ``model.share_memory()`` shares only the weights) updates the shared
  vector in place. Nothing crosses a socket but a small NOTE per step, so the server can
  count clocks and notice dead workers.
- **across hosts: through the server.** The server receives each worker's gradient on that
  worker's own connection thread and applies it there, with that worker's own optimizer,
  to the one weight vector, without taking the lock the ``async`` mode takes: pushes of
  different workers are applied concurrently (NumPy releases the GIL inside large
  element-wise operations), and a pull may read a half-applied update.

Cleanup: the creator (the server) unlinks the block; a worker only closes its view.
Python < 3.13 registers every *attached* block with the process's resource tracker,
which would unlink it when that worker exits; :meth:`SharedWeights.attach` does not
register it (3.13's ``track=False``), so a finished worker cannot pull the weights away
from the others.
"""

from __future__ import annotations

from multiprocessing import resource_tracker, shared_memory

import numpy as np

from sparkgrad.errors import CommError

ITEM = np.dtype(np.float32).itemsize
_MADE_HERE: set[str] = set()  # blocks this process created (and its tracker owns)


class SharedWeights:
    """A flat float32 vector of ``numel`` weights in a shared-memory block.

    Make it with :meth:`create` (the owner, who later :meth:`unlink` s it) or
    :meth:`attach` (a worker, by the block's ``name``); ``array`` is the NumPy view.
    """

    def __init__(self, block: shared_memory.SharedMemory, numel: int, owner: bool) -> None:
        self.block, self.numel, self.owner = block, numel, owner
        self.array = np.ndarray((numel,), dtype=np.float32, buffer=block.buf)

    @property
    def name(self) -> str:
        return self.block.name

    @classmethod
    def create(cls, initial: np.ndarray) -> SharedWeights:
        """A new block holding a copy of ``initial`` (a flat float32 vector)."""
        numel = int(initial.size)
        block = shared_memory.SharedMemory(create=True, size=max(ITEM, numel * ITEM))
        _MADE_HERE.add(block.name)
        weights = cls(block, numel, owner=True)
        np.copyto(weights.array, np.asarray(initial, np.float32).reshape(-1))
        return weights

    @classmethod
    def attach(cls, name: str, numel: int) -> SharedWeights:
        """The block ``name`` made by :meth:`create`, which must hold ``numel`` weights."""
        register = resource_tracker.register
        if name not in _MADE_HERE:  # the owner unlinks, not whoever exits first
            resource_tracker.register = lambda *args: None  # Python 3.13: track=False
        try:
            block = shared_memory.SharedMemory(name=name)
        except (FileNotFoundError, OSError) as exc:
            raise CommError(
                f"hogwild: cannot attach the shared weights {name!r} ({exc}); shared memory "
                "works when every worker runs on the server's host (use the server path "
                "across hosts)"
            ) from None
        finally:
            resource_tracker.register = register
        if block.size < numel * ITEM:
            block.close()
            raise CommError(
                f"hogwild: shared weights {name!r} hold {block.size // ITEM} floats, the "
                f"model has {numel}"
            )
        return cls(block, numel, owner=False)

    def close(self) -> None:
        """Drop this process's view (the block lives on until the owner unlinks it)."""
        self.array = np.empty(0, np.float32)  # no view may outlive the mapping
        try:
            self.block.close()
        except BufferError:  # a view is still alive somewhere: leave the mapping to the GC
            pass

    def unlink(self) -> None:
        """Owner: close and remove the block."""
        self.close()
        if self.owner:
            _MADE_HERE.discard(self.block.name)
            try:
                self.block.unlink()
            except FileNotFoundError:
                pass

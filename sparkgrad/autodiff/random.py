"""The seedable random generator behind ``randn``, ``rand``, dropout, weight init and shuffling.

Numbers are always drawn on the CPU with NumPy's PCG64 and then moved to the device, so
the same seed gives the same weights on ``cpu`` and ``cuda`` and on every rank.

:class:`Generator` is ``torch.Generator``'s counterpart: ``manual_seed``, ``seed``,
``initial_seed``, ``get_state``/``set_state``. It *is* a ``numpy.random.Generator``
(a subclass), so it can be handed to anything that draws with NumPy (``nn.init``'s
``generator=``, ``DataLoader(generator=...)``, ``random_split``). Seeding it with ``s``
gives exactly the stream of ``numpy.random.default_rng(s)``; the numbers differ from
torch's (a different algorithm), the interface does not.

The global generator is per thread, like the grad-mode switch: ranks running as threads of
one process (the ``threads`` transport) each call ``manual_seed(seed)`` and build their
model, and one rank's draws must not interleave with another's. In a single-threaded
program this is exactly PyTorch's global generator. A thread that never seeds starts from
seed 0.
"""

from __future__ import annotations

import copy
import os
import threading
from typing import Any

import numpy as np

_local = threading.local()

#: the seed of a fresh ``torch.Generator()`` (PyTorch's ``default_rng_seed_val``)
DEFAULT_SEED = 67280421310721
_UINT64 = 2**64


def _seed_value(seed: Any) -> int:
    """PyTorch's accepted range ``[-2**63, 2**64)``; negative seeds wrap around as in torch."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise RuntimeError(f"manual_seed expected an int, but got {type(seed).__name__}")
    seed = int(seed)
    if not -(2**63) <= seed < _UINT64:
        raise ValueError(f"Overflow: a seed must be within [-2**63, 2**64), found {seed}")
    return seed % _UINT64


class Generator(np.random.Generator):
    """A random generator you own (``torch.Generator``); a ``numpy.random.Generator`` too.

    ``g = sg.Generator().manual_seed(42)`` then ``DataLoader(ds, shuffle=True, generator=g)``:
    the shuffles come from ``g``, not from the global generator. A fresh generator starts
    from PyTorch's default seed (``initial_seed() == 67280421310721``). Only ``"cpu"`` is a
    valid device: sparkgrad draws on the CPU even for CUDA tensors.
    """

    def __init__(self, device: Any = "cpu") -> None:
        if str(device).split(":")[0] not in ("cpu",):
            raise RuntimeError(
                f"sparkgrad draws every random number on the CPU: expected device 'cpu', "
                f"found {device!r} (the numbers are moved to the GPU afterwards)"
            )
        super().__init__(np.random.PCG64(DEFAULT_SEED))
        self.device = "cpu"
        self._initial_seed = DEFAULT_SEED

    def manual_seed(self, seed: int) -> Generator:
        """Reset the stream to the one of ``seed``; returns ``self`` (chainable, as torch)."""
        seed = _seed_value(seed)
        self.bit_generator.state = np.random.PCG64(seed).state
        self._initial_seed = seed
        return self

    def seed(self) -> int:
        """Seed from the operating system's entropy (non-deterministic); returns the seed."""
        seed = int.from_bytes(os.urandom(8), "little")
        self.manual_seed(seed)
        return seed

    def initial_seed(self) -> int:
        """The seed this generator was last seeded with."""
        return self._initial_seed

    def get_state(self) -> dict:
        """The stream position as a JSON-friendly dict (a copy); give it to :meth:`set_state`.

        PyTorch returns a ``uint8`` tensor here; this is NumPy's PCG64 state, which
        ``sg.save`` stores as it is. Only the stream position travels, as in torch.
        """
        return copy.deepcopy(self.bit_generator.state)

    def set_state(self, new_state: dict) -> Generator:
        """Continue from a state returned by :meth:`get_state`; returns ``self``."""
        if not isinstance(new_state, dict) or new_state.get("bit_generator") != "PCG64":
            found = new_state.get("bit_generator") if isinstance(new_state, dict) else new_state
            raise TypeError(
                "set_state expected a state from Generator.get_state() (a PCG64 state dict), "
                f"found {type(found).__name__ if not isinstance(found, str) else found!r}"
            )
        self.bit_generator.state = copy.deepcopy(new_state)
        return self

    def __reduce__(self) -> tuple:  # pickling (multiprocessing) keeps the class and stream
        return (_rebuild, (self._initial_seed, self.get_state()))

    def __repr__(self) -> str:
        return f"<sparkgrad.Generator device='cpu' initial_seed={self._initial_seed}>"

    __str__ = __repr__


def _rebuild(initial_seed: int, state: dict) -> Generator:
    g = Generator()
    g._initial_seed = initial_seed
    return g.set_state(state)


def manual_seed(seed: int) -> Generator:
    """Reseed this thread's generator (as ``torch.manual_seed``) and return it."""
    _local.generator = Generator().manual_seed(seed)
    return _local.generator


def default_generator() -> Generator:
    """The generator that factories and initialisers draw from (this thread's)."""
    generator = getattr(_local, "generator", None)
    return generator if generator is not None else manual_seed(0)


def get_rng_state() -> dict:
    """The generator state as a JSON-friendly dict (stored in checkpoints)."""
    return default_generator().bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    default_generator().bit_generator.state = state

"""The one flag :meth:`Function.apply` reads for autocast (kept tiny: no imports of ops).

``engaged`` counts the ``sg.autocast`` regions open in *any* thread. While it is 0 (the
normal case) the hot path pays one module-attribute read and nothing else. When it is not,
``Function.apply`` hands the call to :data:`dispatch` (set by
:mod:`sparkgrad.autodiff.amp.autocast_mode`), which looks at *this* thread's state (ranks
running as threads each have their own, as PyTorch's autocast state is thread-local) and
either returns ``None`` (run the op as it is) or the op's output computed under the policy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

engaged = 0  # open autocast regions, all threads together (read on every op)
dispatch: Callable[[type, tuple, dict], Any] | None = None  # set by amp.autocast_mode
local = threading.local()  # .cpu / .cuda: (dtype, cache) or None; .busy: inside dispatch
_lock = threading.Lock()


def enter() -> None:
    global engaged
    with _lock:
        engaged += 1


def leave() -> None:
    global engaged
    with _lock:
        engaged -= 1

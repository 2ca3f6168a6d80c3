"""Thread ranks seeded alike draw alike, however their draws interleave.

Ranks of the ``threads`` transport each call ``manual_seed(0)`` and build their model; if
the generator were shared, one rank's draws would consume another's numbers. The truth is
a single-threaded draw from the same seed.
"""

from __future__ import annotations

import threading

import numpy as np

import sparkgrad as sg


def test_threads_seeded_alike_draw_the_same_numbers_as_one_thread():
    sg.manual_seed(0)
    truth = [sg.randn(3).numpy() for _ in range(50)]
    start = threading.Barrier(4)
    out: dict[int, list[np.ndarray]] = {}

    def rank(r: int) -> None:
        sg.manual_seed(0)
        out[r] = []
        for _ in range(50):  # every rank draws one, then waits for the others: interleaved
            start.wait()
            out[r].append(sg.randn(3).numpy())

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in range(4):
        np.testing.assert_array_equal(np.stack(out[r]), np.stack(truth))

"""How far a timing on this machine repeats: the yardstick for the simulator's 15% target.

    python -m sparkgrad.benchmark.machine_noise              # about half a minute
    python -m sparkgrad.benchmark.machine_noise --seconds 5

A prediction can only be checked to within what the measurement itself repeats to. Each
part runs in this one process on one BLAS thread, with nothing else of the project running:

1. **Drift.** The validation's ``single`` step (the MLP 784-256-256-256-10, Adam, batch
   256), timed as ``--validate-local`` times it -- the median of 12 steps -- window after
   window for ``--seconds``; then a 256 x 256 float32 matmul the same way (the device's
   own kernel, no Python, no fresh arrays). Printed: the window medians' range, and the
   *miss rate one second ahead*: the share of windows more than 15% away from the window
   one second later. It is how often a predictor that knew the step exactly, calibrated
   one second before (as each validation repeat is), would miss the target.
2. **Untouched arrays go cold.** One Adam step over the MLP's parameters, and the MLP's
   forward on 128 rows, back to back and then after 10 ms of sleeping, or of spinning in
   a loop that touches no memory. Asleep, the core is free for the host to give to
   another guest, and its caches with it; spinning keeps the core, but most likely not
   the 32 MiB L3, which such a processor shares among 8 cores. On a machine of one's own
   the three columns would nearly agree. A rank that waits (for a collective, for a
   pipeline neighbour) meets its arrays cold by an amount that depends on the neighbours:
   a cost no device model of this machine can know beforehand.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

TOLERANCE = 0.15  # the simulator's on-machine target
LAG_S = 1.0  # how long before its steps a validation repeat calibrates, about
PAUSE_S = 0.010


def window_medians(fn: Callable[[], object], calls: int, seconds: float) -> list[tuple]:
    """``(start, median seconds of one call)`` per window of ``calls`` calls of ``fn``,
    window after window until ``seconds`` have passed."""
    out = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        start, times = time.perf_counter(), []
        for _ in range(calls):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        out.append((start, statistics.median(times)))
    return out


def miss_rate(windows: list[tuple], lag_s: float = LAG_S, tolerance: float = TOLERANCE) -> float:
    """The share of windows whose value is more than ``tolerance`` away from (relative to)
    the value of the first window at least ``lag_s`` later; windows with none that late
    are left out (0.0 when none has one).

    >>> miss_rate([(0.0, 1.0), (1.0, 1.1), (2.0, 1.4), (2.5, 1.0)], lag_s=1.0)
    0.5
    """
    pairs = []
    for i, (t, value) in enumerate(windows):
        later = next((v for s, v in windows[i + 1 :] if s - t >= lag_s), None)
        if later is not None:
            pairs.append(abs(value / later - 1.0) > tolerance)
    return sum(pairs) / len(pairs) if pairs else 0.0


def spin(seconds: float) -> None:
    """Keep the core busy for ``seconds`` without touching any array."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _mlp_pieces() -> tuple[Callable, Callable, Callable]:
    """The validation's single step, one Adam step and one forward of its MLP."""
    import sparkgrad as sg
    from sparkgrad.models.mlp import build_mlp
    from sparkgrad.simulate.local_case import strategy_step

    step, batches = strategy_step(
        {"strategy": "single", "hidden": [256, 256, 256], "batch": 256, "steps": 1}
    )
    step(*batches[0])
    model = build_mlp((256, 256, 256), seed=0)
    params = list(model.parameters())
    for p in params:
        p.grad = sg.tensor(np.ones(p.shape, np.float32))
    opt = sg.optim.Adam(params, lr=1e-3)
    opt.step()
    x = sg.tensor(np.ones((128, 784), np.float32))
    return (lambda: step(*batches[0])), opt.step, (lambda: model(x))


def measure(seconds: float = 12.0, repeats: int = 41) -> dict:
    """Every number :func:`main` prints (seconds; rates as fractions)."""
    from sparkgrad.benchmark.strategies import one_blas_thread
    from sparkgrad.simulate.local_calibrate import median_time

    with one_blas_thread():
        train_step, adam, forward = _mlp_pieces()
        a = np.ones((256, 256), np.float32)
        drift = {
            "engine step": window_medians(train_step, 12, seconds),
            "matmul 256": window_medians(lambda: a @ a, 50, seconds / 2),
        }
        pauses = {
            "back to back": None,
            f"after {PAUSE_S * 1e3:.0f} ms asleep": lambda: time.sleep(PAUSE_S),
            f"after {PAUSE_S * 1e3:.0f} ms spinning": lambda: spin(PAUSE_S),
        }
        cold = {
            name: {how: median_time(fn, repeats, before=p) for how, p in pauses.items()}
            for name, fn in (("Adam step", adam), ("forward, 128 rows", forward))
        }
    return {
        "drift": {
            k: {
                "min": min(v for _, v in w),
                "median": statistics.median(v for _, v in w),
                "max": max(v for _, v in w),
                "windows": len(w),
                "miss_rate": miss_rate(w),
            }
            for k, w in drift.items()
        },
        "cold": cold,
    }


def report(numbers: dict) -> str:
    lines = [
        "drift: window medians (12 steps, or 50 matmuls, each) and how often one is "
        f"more than {TOLERANCE:.0%} away from the window {LAG_S:g} s later",
        "",
        "| kernel | windows | min us | median us | max us | miss rate |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, d in numbers["drift"].items():
        lines.append(
            f"| {name} | {d['windows']} | {d['min'] * 1e6:.0f} | {d['median'] * 1e6:.0f} | "
            f"{d['max'] * 1e6:.0f} | {d['miss_rate']:.0%} |"
        )
    hows = list(next(iter(numbers["cold"].values())))
    lines += ["", "untouched arrays go cold: median us per call", ""]
    lines += ["| call | " + " | ".join(hows) + " |", "|---|" + "---:|" * len(hows)]
    for name, by in numbers["cold"].items():
        lines.append(f"| {name} | " + " | ".join(f"{by[h] * 1e6:.0f}" for h in hows) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=12.0, help="drift: seconds per kernel")
    p.add_argument("--repeats", type=int, default=41, help="cold: timed calls per case")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.repeats < 1:
        p.error(f"expected --seconds > 0 and --repeats >= 1, found {args.seconds}, {args.repeats}")
    print(report(measure(args.seconds, args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Pipeline schedules: in which order one stage runs its micro-batches' forwards and backwards.

A schedule is a plain list of actions for one stage, ``("F", mb)`` or ``("B", mb)``; the
pipeline strategy walks it, receiving and sending at stage boundaries. Two schedules:

- **GPipe**: every forward, then every backward. Simple, but a stage holds the
  activations of all ``m`` micro-batches at once.
- **1F1B** (PipeDream-flush): stage ``s`` runs ``p - s - 1`` warm-up forwards, then
  alternates one forward and one backward, then drains the remaining backwards. A
  micro-batch's activations are freed as soon as its backward ran, so a stage holds at
  most ``p - s`` of them, independent of ``m``.

Both do the same arithmetic (the same gradients, summed in the same micro-batch order on
every parameter) and have the same bubble: with equal stage costs, each of the ``p``
stages idles ``p - 1`` slots of ``m + p - 1``::

    >>> one_f_one_b_schedule(stage=0, stages=2, micro_batches=3)
    [('F', 0), ('F', 1), ('B', 0), ('F', 2), ('B', 1), ('B', 2)]
    >>> bubble_fraction(4, 8)        # (p-1)/(m+p-1)
    0.2727...
"""

from __future__ import annotations

from collections.abc import Sequence

from sparkgrad.errors import ConfigError

Action = tuple[str, int]


def gpipe_schedule(stage: int, stages: int, micro_batches: int) -> list[Action]:
    """All forwards, then all backwards (the same order on every stage)."""
    return [("F", i) for i in range(micro_batches)] + [("B", i) for i in range(micro_batches)]


def one_f_one_b_schedule(stage: int, stages: int, micro_batches: int) -> list[Action]:
    """Warm-up forwards, then one forward / one backward, then the remaining backwards."""
    warmup = min(stages - stage - 1, micro_batches)
    actions: list[Action] = [("F", i) for i in range(warmup)]
    for i in range(micro_batches - warmup):
        actions += [("F", warmup + i), ("B", i)]
    actions += [("B", i) for i in range(micro_batches - warmup, micro_batches)]
    return actions


SCHEDULES = {"gpipe": gpipe_schedule, "1f1b": one_f_one_b_schedule}


def bubble_fraction(p: int, m: int) -> float:
    """The idle share of a pipeline step, in theory: ``(p - 1) / (m + p - 1)``."""
    return (p - 1) / (m + p - 1)


def peak_live(actions: list[Action]) -> int:
    """Most micro-batches whose forward ran and whose backward did not, at any moment."""
    live = peak = 0
    for kind, _ in actions:
        live += 1 if kind == "F" else -1
        peak = max(peak, live)
    return peak


def simulate(
    schedule: str,
    stages: int,
    micro_batches: int,
    forward: float | Sequence[float] = 1.0,
    backward: float | Sequence[float] = 1.0,
) -> float:
    """Idle fraction of the step if every F costs ``forward``, every B ``backward``.

    A tiny event simulation with free communication: ``F(s, i)`` may start once
    ``F(s-1, i)`` ended, ``B(s, i)`` once ``B(s+1, i)`` ended, and each stage runs its
    actions in its schedule's order. The step ends when every stage is done. With equal
    costs every stage idles alike and the answer is (p-1)/(m+p-1); ``forward`` and
    ``backward`` may also be one cost per stage (uneven stages), and the answer is then the
    idle fraction averaged over the stages -- what a perfectly fast network would leave.
    """
    fwd = list(forward) if isinstance(forward, Sequence) else [forward] * stages
    bwd = list(backward) if isinstance(backward, Sequence) else [backward] * stages
    if len(fwd) != stages or len(bwd) != stages:
        raise ConfigError(
            f"simulate: expected {stages} forward and backward costs, found {len(fwd)}, {len(bwd)}"
        )
    plans = [SCHEDULES[schedule](s, stages, micro_batches) for s in range(stages)]
    done: dict[tuple[str, int, int], float] = {}
    clock, pos = [0.0] * stages, [0] * stages
    while any(pos[s] < len(plans[s]) for s in range(stages)):
        progressed = False
        for s in range(stages):
            while pos[s] < len(plans[s]):
                kind, i = plans[s][pos[s]]
                dep = ("F", s - 1, i) if kind == "F" else ("B", s + 1, i)
                if 0 <= dep[1] < stages and dep not in done:
                    break  # waits for a neighbour
                ready = done.get(dep, 0.0)
                clock[s] = max(clock[s], ready) + (fwd[s] if kind == "F" else bwd[s])
                done[(kind, s, i)] = clock[s]
                pos[s] += 1
                progressed = True
        if not progressed:
            raise ConfigError(f"schedule {schedule!r} deadlocks at positions {pos}")
    total = max(clock)
    idle = [(total - micro_batches * (f + b)) / total for f, b in zip(fwd, bwd)]
    return sum(idle) / stages

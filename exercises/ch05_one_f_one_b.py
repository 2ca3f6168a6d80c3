"""Chapter 5 exercise (pipeline) — the 1F1B schedule of one stage.

A pipeline of ``stages`` ranks runs ``micro_batches`` pieces of each batch through the
model's stages. A *schedule* says, for one stage, in which order it runs its forwards
``("F", i)`` and backwards ``("B", i)``; the pipeline strategy walks the list, receiving
activations from the stage before and gradients from the stage after (blocking).

GPipe runs every forward, then every backward: stage ``s`` holds the activations of all
``m`` micro-batches at once. **1F1B** (PipeDream-flush) starts each backward as early as
possible, so a micro-batch's activations are freed soon and a stage never holds more
than ``stages - stage`` of them, however large ``m`` — with the same bubble as GPipe,
``(p - 1) / (m + p - 1)``, and the same gradients (micro-batches are summed in the same
order).

The project's version is ``one_f_one_b_schedule`` in
``sparkgrad/parallel/pipeline/schedules.py`` (next to GPipe's one-liner and the event
simulation the tests use). Check yours: ``python -m pytest -m exercise_1f1b --learner``.
"""

from __future__ import annotations


def one_f_one_b_schedule(stage: int, stages: int, micro_batches: int) -> list[tuple[str, int]]:
    """Stage ``stage``'s actions: warm-up forwards, then one F / one B, then the last Bs.

    - **warm-up**: stage ``s`` runs ``stages - s - 1`` forwards first (never more than
      ``micro_batches``): the last stage none, stage 0 the most, enough to fill the pipe;
    - **steady state**: then it alternates the next forward and the oldest backward;
    - **cool-down**: the backwards still owed, oldest first.

    Micro-batches go through a stage in order both ways: ``F0 F1 F2 ...`` and
    ``B0 B1 B2 ...``. For example stage 0 of 2 with 3 micro-batches:
    ``[("F", 0), ("F", 1), ("B", 0), ("F", 2), ("B", 1), ("B", 2)]``.
    """
    raise NotImplementedError("exercise: one_f_one_b_schedule in exercises/ch05_one_f_one_b.py")

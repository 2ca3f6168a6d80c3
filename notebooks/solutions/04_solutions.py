"""Solutions to the exercises of notebook 04, "Data parallel on Spark".

Try the exercises first! To check a solution in the notebook::

    %run solutions/04_solutions.py
    check_exercise_1(solution_1)

Each ``solution_k`` is what the notebook's ``check_exercise_k`` expects.
"""

import math

import numpy as np


# Exercise 1: every rank draws the same permutation (same seed + epoch), pads it to a
# multiple of num_replicas by repeating its head (as often as needed: 5 samples on 8 ranks
# wrap around twice), and takes the strided slice starting at its rank.
def my_shard(n_samples: int, num_replicas: int, rank: int, epoch: int, seed: int) -> list[int]:
    order = np.random.default_rng(seed + epoch).permutation(n_samples).tolist()
    total = math.ceil(n_samples / num_replicas) * num_replicas
    padded = (order * math.ceil(total / n_samples))[:total]
    return padded[rank::num_replicas]


solution_1 = my_shard

# Exercise 2: drop_last=True trims 4000 to ceil((4000 - 3) / 3) * 3 = 3999 indices, 1333 per
# rank. Each rank's batch is 96 / 3 = 32, and its loader drops the last incomplete batch:
# 1333 // 32 = 41 steps (41 * 32 = 1312 samples; the other 21 wait for the next epoch).
solution_2 = (96 // 3, (math.ceil((4000 - 3) / 3) * 3 // 3) // (96 // 3))


# Exercise 3: the newest checkpoint before the crash is the one at the largest multiple of
# checkpoint_every not after fail_at_step (it is written before the crash when they are
# equal), so the resumed run redoes fail_at_step mod checkpoint_every steps.
def steps_redone(fail_at_step: int, checkpoint_every: int) -> int:
    return fail_at_step % checkpoint_every


solution_3 = steps_redone

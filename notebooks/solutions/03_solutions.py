"""Solutions to the exercises of notebook 03, "Collectives".

Try the exercises first! To check a solution in the notebook::

    %run solutions/03_solutions.py
    check_exercise_1(solution_1)

Each ``solution_k`` is what the notebook's ``check_exercise_k`` expects.
"""

import math

import numpy as np

import sparkgrad.distributed as dist


# Exercise 1: gather to rank 0, add there, send the sum back. Rank 0 receives in rank order,
# so the additions always happen in the same order (the result is the same on every run).
# Rank 0's link carries 2(n-1) whole buffers: the ring's 2(n-1)/n per rank is n times less.
def my_all_reduce(buf: np.ndarray) -> None:
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if rank == 0:
        incoming = np.empty_like(buf)
        for src in range(1, world_size):
            dist.recv(incoming, src)
            buf += incoming
        for dst in range(1, world_size):
            dist.send(buf, dst)
    else:
        dist.send(buf, 0)
        dist.recv(buf, 0)


solution_1 = my_all_reduce

# Exercise 2: ring all-reduce = 2(n-1) steps of alpha, and each rank sends 2(n-1)/n of the
# buffer at the achieved bandwidth beta * efficiency:
#   2*15*5e-6 + 2*15/16 * 256*2**20 / (0.9 * 50e9) = 0.00015 + 0.011185 = 0.011335 s
n, S = 16, 256 * 2**20
solution_2 = 2 * (n - 1) * 5e-6 + 2 * (n - 1) / n * S / (0.9 * 50e9)

# Exercise 3: ring 2(n-1) a + 2(n-1)/n S/B  =  tree 2 log2(n) a + 2 S/B
#   =>  (2(n-1) - 2 log2 n) a = (2 - 2(n-1)/n) S/B = (2/n) S/B
#   =>  S = (n - 1 - log2 n) * a * n * B = (7 - 3) * 1e-6 * 8 * 370e9 = 11.84 MB
n, alpha, bandwidth = 8, 1e-6, 370e9
solution_3 = (n - 1 - math.log2(n)) * alpha * n * bandwidth

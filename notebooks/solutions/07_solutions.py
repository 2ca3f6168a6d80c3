"""Solutions to the exercises of notebook 07, "Benchmarks against PyTorch".

Try the exercises first! To check a solution in the notebook::

    %run solutions/07_solutions.py
    check_exercise_1(solution_1)

Each ``solution_k`` is what the notebook's ``check_exercise_k`` expects.
"""

import math

# Exercise 1: the overhead is what the step costs beyond NumPy's matmuls,
#   overhead = 2.4 - 0.9 = 1.5 ms,  share = 1.5 / 2.4 = 0.625.
# PyTorch's 1.6 ms plays no part. With 62.5% of the step in the engine's own bookkeeping,
# halving the overhead (2.4 -> 1.65 ms) helps more than a BLAS twice as fast (2.4 -> 1.95).
sparkgrad_ms, floor_ms = 2.4, 0.9
solution_1 = (sparkgrad_ms - floor_ms) / sparkgrad_ms

# Exercise 2: the ratios are 0.85, 1.033, 1.3, 2.5 and (memory) 0.4:
#   0.85  < 0.95        -> faster by (1 - 0.85) * 100 = 15%
#   1.033 within ±5%    -> on par
#   1.3   in (1.05, 2)  -> slower by 30%
#   2.5   >= 2          -> 2.5× slower
#   0.4   memory        -> smaller by 60%
solution_2 = ["faster by 15%", "on par", "slower by 30%", "2.5× slower", "smaller by 60%"]

# Exercise 3: halving-doubling on n = 8 ranks over NVLink (alpha = 1 us, B = 370 GB/s):
#   all_reduce = 2 log2(8) * 1e-6 + 2 * 7/8 * 4e8 / 370e9 = 6e-6 + 1.8919e-3 = 1.8979e-3 s
#   efficiency = compute / (compute + all_reduce) = 5e-3 / 6.8979e-3 = 0.7249
# The bandwidth term 2(n-1)/n S/B hardly grows with n (it tends to 2 S/B = 2.16 ms), so on
# this link the all_reduce never reaches the 5 ms of compute: efficiency stays above ~0.69
# however many GPUs (until the ranks leave the node for a slower network).
n, alpha, bandwidth, nbytes, compute_s = 8, 1e-6, 370e9, 4e8, 5e-3
all_reduce_s = 2 * math.log2(n) * alpha + 2 * (n - 1) / n * nbytes / bandwidth
solution_3 = compute_s / (compute_s + all_reduce_s)

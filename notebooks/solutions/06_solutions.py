"""Solutions to the exercises of notebook 06, "ZeRO".

Try the exercises first! To check a solution in the notebook::

    %run solutions/06_solutions.py
    check_exercise_1(solution_1)

Each ``solution_k`` is what the notebook's ``check_exercise_k`` expects.
"""


# Exercise 1: float32 parameters 4P, gradients 4P, Adam's two moments 8P; stage k shards
# the optimizer state (k >= 1), the gradients (k >= 2) and the parameters (k >= 3) by N.
def bytes_per_rank(stage: int, P: int, N: int) -> float:  # noqa: N803
    parameters = 4 * P / N if stage >= 3 else 4 * P
    gradients = 4 * P / N if stage >= 2 else 4 * P
    optimizer = 8 * P / N if stage >= 1 else 8 * P
    return parameters + gradients + optimizer


solution_1 = bytes_per_rank

# Exercise 2: P = 7.5e9, budget 50e9 bytes.
#   stage 1: 8P + 8P/N = 60e9 + 60e9/N  > 50e9 for every N: never fits (the replicated
#            parameters and gradients alone are 60 GB)
#   stage 2: 4P + 12P/N = 30e9 + 90e9/N <= 50e9  <=>  N >= 4.5  ->  N = 5
#   stage 3: 16P/N = 120e9/N <= 50e9             <=>  N >= 2.4  ->  N = 3
solution_2 = {1: None, 2: 5, 3: 3}


# Exercise 3: the paper's mixed precision. Parameters 2P (float16, whole on every rank in
# stage 2), gradients 2P/N (float16, sharded), and the optimizer state K = 12 bytes per
# parameter (fp32 master 4 + exp_avg 4 + exp_avg_sq 4), sharded: 12P/N.
def paper_stage2_bytes(P: int, N: int) -> float:  # noqa: N803
    return 2 * P + 2 * P / N + 12 * P / N


solution_3 = paper_stage2_bytes

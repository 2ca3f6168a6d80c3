"""Solutions to the exercises of notebook 02, "Layers and training".

Try the exercises first! To check a solution in the notebook::

    %run solutions/02_solutions.py
    check_exercise_2(solution_2)

Each ``solution_k`` is what the notebook's ``check_exercise_k`` expects.
"""

import numpy as np

# Exercise 1: a Linear(i, o) has an (o, i) weight and an (o,) bias: o·i + o numbers.
#   784·128 + 128 = 100,480;  128·64 + 64 = 8,256;  64·10 + 10 = 650.
solution_1 = (784 * 128 + 128) + (128 * 64 + 64) + (64 * 10 + 10)  # 109,386


# Exercise 2: log softmax(z)_y = z_y - logsumexp(z), and logsumexp(z) = m + log Σ exp(z - m)
# with m = max(z): every exponent is <= 0 (no overflow) and the largest term is 1 (the sum
# never underflows to 0, so the log is finite).
def my_cross_entropy(logits, targets):
    logits = np.asarray(logits, dtype=np.float64)
    m = logits.max(axis=1, keepdims=True)
    logsumexp = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    picked = logits[np.arange(len(targets)), targets]
    return float(np.mean(logsumexp - picked))


solution_2 = my_cross_entropy


# Exercise 3: PyTorch's SGD with momentum (dampening 0, no Nesterov): the buffer starts as
# the first gradient, then buf = momentum·buf + g; the step is w -= lr·buf.
def my_momentum_step(w, g, buf, lr, momentum):
    buf = g.copy() if buf is None else momentum * buf + g
    return w - lr * buf, buf


solution_3 = my_momentum_step

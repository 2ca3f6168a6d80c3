"""Solutions to the exercises of notebook 08, "The Transformer from scratch".

Try the exercises first! To check a solution in the notebook::

    %run solutions/08_solutions.py
    check_exercise_2(solution_2)

Each ``solution_k`` is what the notebook's ``check_exercise_k`` expects.
"""

import numpy as np


# Exercise 1: query i may attend key j when j <= i: the lower triangle, ones on the diagonal.
# np.tri(L, S) is exactly that for any L and S (aligned to the top left, as PyTorch's
# is_causal); np.arange(S)[None, :] <= np.arange(L)[:, None] is the same array.
def causal_mask(L: int, S: int) -> np.ndarray:
    return np.tri(L, S, dtype=bool)


solution_1 = causal_mask


# Exercise 2: (N, L, E) -> (N, L, H, E/H) cuts each position's features into H consecutive
# slices (head h gets features h·E/H .. (h+1)·E/H - 1); swapping L and H makes the heads a
# batch dim. merge_heads undoes the swap, then glues the slices back together.
def split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    n, length, e = x.shape
    return x.reshape(n, length, heads, e // heads).swapaxes(1, 2)


def merge_heads(x: np.ndarray) -> np.ndarray:
    n, heads, length, hd = x.shape
    return x.swapaxes(1, 2).reshape(n, length, heads * hd)


solution_2 = (split_heads, merge_heads)


# Exercise 3: S = scale · Q Kᵀ is a matmul, so dQ = scale · dS K and dK = scale · dSᵀ Q
# (the same rule as dA = dC Bᵀ, dB = Aᵀ dC for C = A Bᵀ). The rest is section 4.
def attention_backward(
    Q: np.ndarray, K: np.ndarray, V: np.ndarray, dO: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale = 1 / np.sqrt(Q.shape[-1])
    S = scale * Q @ K.swapaxes(-1, -2)
    P = np.exp(S - S.max(axis=-1, keepdims=True))
    P /= P.sum(axis=-1, keepdims=True)
    dV = P.swapaxes(-1, -2) @ dO
    dP = dO @ V.swapaxes(-1, -2)
    dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True))
    dQ = scale * dS @ K
    dK = scale * dS.swapaxes(-1, -2) @ Q
    return dQ, dK, dV


solution_3 = attention_backward

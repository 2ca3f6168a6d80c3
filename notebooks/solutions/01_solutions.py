"""Solutions to the exercises of notebook 01, "Autograd from scratch".

Try the exercises first! To check a solution in the notebook::

    %run solutions/01_solutions.py
    check_exercise_2(solution_2)

Each ``solution_k`` is what the notebook's ``check_exercise_k`` expects.
"""

import numpy as np

import sparkgrad as sg

# Exercise 1: g(x) = x³ - 2x, so g'(x) = 3x² - 2 and g'(2) = 3·4 - 2 = 10.
solution_1 = 3 * 2**2 - 2


# Exercise 2: the backward of tanh. forward saved its output z = tanh(a), and
# d tanh(a)/da = 1 - tanh²(a) = 1 - z², so dL/da = dL/dz · (1 - z²).
class MyTanh(sg.Function):
    """z = tanh a;  dz/da = 1 - z²"""

    @staticmethod
    def forward(ctx, a):
        out = np.tanh(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved_tensors
        return grad * (1 - out * out)


solution_2 = MyTanh

# Exercise 3: loss = Σᵢⱼ X[i, j]·s[j], so ∂loss/∂s[j] = Σᵢ X[i, j]: s[j] multiplies a whole
# column of X (it was broadcast over the rows), and its gradient is the column sum.
X_values = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
solution_3 = X_values.sum(axis=0)

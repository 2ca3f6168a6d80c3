# "Learning PyTorch with Examples", warm-up: fit y = a + b x + c x^2 + d x^3 to sin(x) by
# gradient descent, the gradients worked out by hand. The tutorial does this in NumPy;
# here the same program runs on tensors, used the way NumPy arrays are.
import math

import numpy as np
import torch

x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)

# Random weights, as Python floats (drawn by NumPy, so every library starts the same).
rng = np.random.default_rng(0)
a, b, c, d = (float(v) for v in rng.standard_normal(4))

learning_rate = 1e-6
for t in range(2000):
    # Forward pass: the predicted y
    y_pred = a + b * x + c * x**2 + d * x**3

    # The loss: sum of squared errors
    loss = torch.square(y_pred - y).sum().item()
    if t % 100 == 99:
        print(t, loss)

    # Backprop by hand: the gradients of the loss with respect to a, b, c, d
    grad_y_pred = 2.0 * (y_pred - y)
    grad_a = grad_y_pred.sum().item()
    grad_b = (grad_y_pred * x).sum().item()
    grad_c = (grad_y_pred * x**2).sum().item()
    grad_d = (grad_y_pred * x**3).sum().item()

    # Update the weights
    a -= learning_rate * grad_a
    b -= learning_rate * grad_b
    c -= learning_rate * grad_c
    d -= learning_rate * grad_d

print(f"Result: y = {a} + {b} x + {c} x^2 + {d} x^3")

# "Learning PyTorch with Examples", Autograd: the backward pass done by autograd, the update
# by hand inside torch.no_grad().
import math

import numpy as np
import torch

dtype = torch.float
device = "cpu"
torch.set_default_device(device)

# Tensors for inputs and outputs; no gradients needed for them
x = torch.linspace(-math.pi, math.pi, 2000, dtype=dtype)
y = torch.sin(x)

# The weights: requires_grad=True asks autograd for their gradients
rng = np.random.default_rng(0)
a = torch.tensor(rng.standard_normal(), dtype=dtype, requires_grad=True)
b = torch.tensor(rng.standard_normal(), dtype=dtype, requires_grad=True)
c = torch.tensor(rng.standard_normal(), dtype=dtype, requires_grad=True)
d = torch.tensor(rng.standard_normal(), dtype=dtype, requires_grad=True)

learning_rate = 1e-6
for t in range(2000):
    # Forward pass: compute predicted y using operations on Tensors.
    y_pred = a + b * x + c * x**2 + d * x**3

    # Compute and print loss; loss is a 0-d tensor, loss.item() its Python number
    loss = (y_pred - y).pow(2).sum()
    if t % 100 == 99:
        print(t, loss.item())

    # Backward pass: a.grad, b.grad, c.grad and d.grad now hold the gradients
    loss.backward()

    # Update the weights by hand, outside autograd
    with torch.no_grad():
        a -= learning_rate * a.grad
        b -= learning_rate * b.grad
        c -= learning_rate * c.grad
        d -= learning_rate * d.grad

        # Manually zero the gradients after updating weights
        a.grad = None
        b.grad = None
        c.grad = None
        d.grad = None

print(f"Result: y = {a.item()} + {b.item()} x + {c.item()} x^2 + {d.item()} x^3")

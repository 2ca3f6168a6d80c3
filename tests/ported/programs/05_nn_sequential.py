# "Learning PyTorch with Examples", nn module: the polynomial as a Linear layer on the
# features (x, x^2, x^3), the loss from nn, the update still by hand.
import math

import numpy as np
import torch

x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)

# The features: x.unsqueeze(-1) has shape (2000, 1), p shape (3,), so xx is (2000, 3)
p = torch.tensor([1, 2, 3])
xx = x.unsqueeze(-1).pow(p)

# Linear computes the output from the input with its weight and bias; Flatten(0, 1)
# makes the (2000, 1) output a 1-D tensor that matches y.
model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))

# Start from NumPy's numbers, so every library starts the same
rng = np.random.default_rng(0)
with torch.no_grad():
    model[0].weight.copy_(torch.tensor(rng.uniform(-0.5, 0.5, (1, 3)), dtype=torch.float32))
    model[0].bias.copy_(torch.tensor(rng.uniform(-0.5, 0.5, (1,)), dtype=torch.float32))

loss_fn = torch.nn.MSELoss(reduction="sum")

learning_rate = 1e-6
for t in range(2000):
    y_pred = model(xx)

    loss = loss_fn(y_pred, y)
    if t % 100 == 99:
        print(t, loss.item())

    # Zero the gradients before running the backward pass
    model.zero_grad()
    loss.backward()

    # Update the weights with gradient descent; each parameter is a tensor
    with torch.no_grad():
        for param in model.parameters():
            param -= learning_rate * param.grad

# The first layer of the model, as with indexing a list
linear_layer = model[0]
w = linear_layer.weight
print(
    f"Result: y = {linear_layer.bias.item()} + {w[:, 0].item()} x"
    f" + {w[:, 1].item()} x^2 + {w[:, 2].item()} x^3"
)

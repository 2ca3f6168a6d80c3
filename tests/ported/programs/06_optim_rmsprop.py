# "Learning PyTorch with Examples", optim: the same model, RMSprop doing the update.
import math

import numpy as np
import torch

x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)

p = torch.tensor([1, 2, 3])
xx = x.unsqueeze(-1).pow(p)

model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
rng = np.random.default_rng(0)
with torch.no_grad():
    model[0].weight.copy_(torch.tensor(rng.uniform(-0.5, 0.5, (1, 3)), dtype=torch.float32))
    model[0].bias.copy_(torch.tensor(rng.uniform(-0.5, 0.5, (1,)), dtype=torch.float32))
loss_fn = torch.nn.MSELoss(reduction="sum")

# The optimizer holds the parameters it updates
learning_rate = 1e-3
optimizer = torch.optim.RMSprop(model.parameters(), lr=learning_rate)
for t in range(2000):
    y_pred = model(xx)

    loss = loss_fn(y_pred, y)
    if t % 100 == 99:
        print(t, loss.item())

    # Gradients accumulate: clear them, compute new ones, take one step
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

linear_layer = model[0]
w = linear_layer.weight
print(
    f"Result: y = {linear_layer.bias.item()} + {w[:, 0].item()} x"
    f" + {w[:, 1].item()} x^2 + {w[:, 2].item()} x^3"
)

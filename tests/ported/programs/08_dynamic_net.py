# "Learning PyTorch with Examples", control flow + weight sharing: the forward pass picks a
# random degree of 3, 4 or 5, and reuses the parameter e for every degree above 3.
import math
import random

import numpy as np
import torch


class DynamicNet(torch.nn.Module):
    def __init__(self, rng):
        super().__init__()
        self.a, self.b, self.c, self.d, self.e = (
            torch.nn.Parameter(torch.tensor(v, dtype=torch.float32)) for v in rng.standard_normal(5)
        )

    def forward(self, x):
        """A different graph every call: Python control flow decides the ops."""
        y = self.a + self.b * x + self.c * x**2 + self.d * x**3
        for exp in range(4, random.randint(4, 6)):
            y = y + self.e * x**exp
        return y

    def string(self):
        return (
            f"y = {self.a.item()} + {self.b.item()} x + {self.c.item()} x^2"
            f" + {self.d.item()} x^3 + {self.e.item()} x^4 ? + {self.e.item()} x^5 ?"
        )


random.seed(0)  # the same degrees, call after call, in every run
x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)

model = DynamicNet(np.random.default_rng(0))

# Plain SGD struggles here; momentum helps
criterion = torch.nn.MSELoss(reduction="sum")
optimizer = torch.optim.SGD(model.parameters(), lr=1e-8, momentum=0.9)
for t in range(3000):
    y_pred = model(x)

    loss = criterion(y_pred, y)
    if t % 300 == 299:
        print(t, loss.item())

    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

print(f"Result: {model.string()}")

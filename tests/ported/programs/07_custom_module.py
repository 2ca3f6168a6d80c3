# "Learning PyTorch with Examples", custom nn Modules: four scalar Parameters in a Module
# of our own, trained with SGD. The weights come from torch's own generator, so the two
# libraries start from different numbers and are compared on where the fit ends.
import math

import torch


class Polynomial3(torch.nn.Module):
    def __init__(self):
        """Four parameters; assigning them to the module registers them."""
        super().__init__()
        self.a = torch.nn.Parameter(torch.randn(()))
        self.b = torch.nn.Parameter(torch.randn(()))
        self.c = torch.nn.Parameter(torch.randn(()))
        self.d = torch.nn.Parameter(torch.randn(()))

    def forward(self, x):
        """The output from the input, any tensor operation allowed."""
        return self.a + self.b * x + self.c * x**2 + self.d * x**3

    def string(self):
        """A method like any other Python method."""
        return (
            f"y = {self.a.item()} + {self.b.item()} x + {self.c.item()} x^2 + {self.d.item()} x^3"
        )


torch.manual_seed(0)
x = torch.linspace(-math.pi, math.pi, 2000)
y = torch.sin(x)

model = Polynomial3()
print("parameters:", len(list(model.parameters())))

criterion = torch.nn.MSELoss(reduction="sum")
optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
for t in range(2000):
    y_pred = model(x)

    loss = criterion(y_pred, y)
    if t % 100 == 99:
        print(t, loss.item())

    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

print(f"Result: {model.string()}")

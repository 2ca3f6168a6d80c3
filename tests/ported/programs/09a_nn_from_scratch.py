# "What is torch.nn really?", part 1: logistic regression on MNIST from scratch (manual
# log_softmax, nll, accuracy, SGD by hand), then refactored: F.cross_entropy, nn.Module with
# nn.Parameter, nn.Linear, optim.SGD, TensorDataset.
import math

import torch
import torch.nn.functional as F
from digits import load_digits  # stands in for torchvision's MNIST download
from torch import nn, optim
from torch.utils.data import TensorDataset

x_train, y_train = load_digits("train")
x_valid, y_valid = load_digits("test")
x_train, y_train, x_valid, y_valid = map(torch.tensor, (x_train, y_train, x_valid, y_valid))
n, c = x_train.shape
print(x_train.shape, y_train.min().item(), y_train.max().item())

torch.manual_seed(0)
weights = torch.randn(784, 10) / math.sqrt(784)  # Xavier initialisation
weights.requires_grad_()
bias = torch.zeros(10, requires_grad=True)


def log_softmax(x):
    return x - x.exp().sum(-1).log().unsqueeze(-1)


def model(xb):
    return log_softmax(xb @ weights + bias)


def nll(input, target):
    return -input[range(target.shape[0]), target].mean()


def accuracy(out, yb):
    preds = torch.argmax(out, dim=1)
    return (preds == yb).float().mean()


loss_func = nll
bs = 64  # batch size
xb, yb = x_train[0:bs], y_train[0:bs]
preds = model(xb)
print("before:", preds[0].shape, loss_func(preds, yb).item(), accuracy(preds, yb).item())

lr = 0.5  # learning rate
epochs = 2  # how many epochs to train for
for epoch in range(epochs):
    for i in range((n - 1) // bs + 1):
        start_i = i * bs
        end_i = start_i + bs
        xb, yb = x_train[start_i:end_i], y_train[start_i:end_i]
        pred = model(xb)
        loss = loss_func(pred, yb)

        loss.backward()
        with torch.no_grad():
            weights -= weights.grad * lr
            bias -= bias.grad * lr
            weights.grad.zero_()
            bias.grad.zero_()
print(
    "scratch:", loss_func(model(x_valid), y_valid).item(), accuracy(model(x_valid), y_valid).item()
)

# F.cross_entropy is log_softmax and nll in one
loss_func = F.cross_entropy


def model(xb):
    return xb @ weights + bias


print("cross_entropy:", loss_func(model(xb), yb).item(), accuracy(model(xb), yb).item())


class Mnist_Logistic(nn.Module):
    def __init__(self):
        super().__init__()
        self.weights = nn.Parameter(torch.randn(784, 10) / math.sqrt(784))
        self.bias = nn.Parameter(torch.zeros(10))

    def forward(self, xb):
        return xb @ self.weights + self.bias


def fit(model, opt=None):
    for epoch in range(epochs):
        for i in range((n - 1) // bs + 1):
            xb, yb = train_ds[i * bs : i * bs + bs]
            loss = loss_func(model(xb), yb)
            loss.backward()
            if opt is None:
                with torch.no_grad():
                    for p in model.parameters():
                        p -= p.grad * lr
                    model.zero_grad()
            else:
                opt.step()
                opt.zero_grad()
    return loss_func(model(x_valid), y_valid).item(), accuracy(model(x_valid), y_valid).item()


train_ds = TensorDataset(x_train, y_train)
print("Module:", *fit(Mnist_Logistic()))


class Mnist_Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(784, 10)

    def forward(self, xb):
        return self.lin(xb)


print("Linear:", *fit(Mnist_Linear()))
model = Mnist_Linear()
print("optim:", *fit(model, optim.SGD(model.parameters(), lr=lr)))

# The canonical MNIST example (pytorch/examples, mnist/main.py): two convolutions, max
# pooling, dropout, two linear layers; Adadelta with StepLR; train() / test(); the weights
# saved with torch.save and loaded back. Arguments are fixed here instead of argparse.
import os
import tempfile
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from digits import load_digits  # stands in for torchvision's MNIST download
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def train(args, model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args["log_interval"] == 0:
            print(
                "Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}".format(
                    epoch,
                    batch_idx * len(data),
                    len(train_loader.dataset),
                    100.0 * batch_idx / len(train_loader),
                    loss.item(),
                )
            )


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()

    test_loss /= len(test_loader.dataset)

    print(
        "\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n".format(
            test_loss,
            correct,
            len(test_loader.dataset),
            100.0 * correct / len(test_loader.dataset),
        )
    )
    return correct


def main():
    args = {"batch_size": 64, "test_batch_size": 1000, "epochs": 3, "lr": 1.0, "gamma": 0.7}
    args.update(seed=1, log_interval=20)
    torch.manual_seed(args["seed"])
    device = torch.device("cpu")

    # transforms.ToTensor() + Normalize((0.1307,), (0.3081,)), done by the loader
    x_train, y_train = load_digits("train", flatten=False, standardize=True)
    x_test, y_test = load_digits("test", flatten=False, standardize=True)
    dataset1 = TensorDataset(torch.tensor(x_train), torch.tensor(y_train))
    dataset2 = TensorDataset(torch.tensor(x_test), torch.tensor(y_test))
    train_loader = DataLoader(dataset1, batch_size=args["batch_size"], shuffle=True)
    test_loader = DataLoader(dataset2, batch_size=args["test_batch_size"])

    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args["lr"])

    start = time.perf_counter()
    scheduler = StepLR(optimizer, step_size=1, gamma=args["gamma"])
    for epoch in range(1, args["epochs"] + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        correct = test(model, device, test_loader)
        scheduler.step()
    print(f"trained in {time.perf_counter() - start:.1f} s")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mnist_cnn.pt")
        torch.save(model.state_dict(), path)
        loaded = Net()
        loaded.load_state_dict(torch.load(path))
    print("loaded back:")
    assert test(loaded, device, test_loader) == correct


if __name__ == "__main__":
    main()

"""``MnistCNN``: the convolutional network of PyTorch's MNIST example (``examples/mnist``).

::

    (N, 1, 28, 28) -conv1 3x3-> (N, 32, 26, 26) -relu-conv2 3x3-> (N, 64, 24, 24) -relu
      -max_pool 2-> (N, 64, 12, 12) -dropout 0.25-flatten-> (N, 9216)
      -fc1-> (N, 128) -relu-dropout 0.5-fc2-> (N, 10) -log_softmax-> log-probabilities

The attribute names are those of the example's ``Net`` (``conv1``, ``conv2``,
``dropout1``, ``dropout2``, ``fc1``, ``fc2``), so ``state_dict()`` keys match and the
weights load into PyTorch's model and back. The output is log-probabilities, so train it
with ``F.nll_loss`` (as the example does). A flat (N, 784) batch, as
``load_mnist(..., flatten=True)`` gives, is reshaped to images first.
"""

from __future__ import annotations

from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff import nn
from sparkgrad.autodiff.random import manual_seed
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ShapeError

__all__ = ["MnistCNN", "build_cnn"]


class MnistCNN(nn.Module):
    """conv(1→32) → conv(32→64) → max-pool → dropout → fc(9216→128) → dropout → fc(128→10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 2 and x.shape[1] == 784:
            x = x.reshape(-1, 1, 28, 28)
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ShapeError(
                f"MnistCNN expects images of shape (N, 1, 28, 28) or flat (N, 784), found {x.shape}"
            )
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = F.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def build_cnn(seed: int = 0) -> MnistCNN:
    """An :class:`MnistCNN` with PyTorch's default init, drawn right after ``manual_seed(seed)``."""
    manual_seed(seed)
    return MnistCNN()

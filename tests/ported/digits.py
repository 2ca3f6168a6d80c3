"""The MNIST of the ported programs: sparkgrad's 5,000 embedded real digits, as NumPy arrays.

It stands in for ``torchvision.datasets.MNIST(download=True)``: no download, no torchvision,
the same arrays under PyTorch and under sparkgrad (each program turns them into tensors
with ``torch.tensor(...)``). 4,000 digits to train on, 1,000 held out for test.
"""

from __future__ import annotations

import numpy as np

from sparkgrad.dataset import load_mnist


def load_digits(
    split: str = "train", flatten: bool = True, standardize: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(float32 images, int64 labels)``: pixels in [0, 1], or ``(x - 0.1307) / 0.3081``.

    ``standardize=True`` is torchvision's ``transforms.Normalize((0.1307,), (0.3081,))``;
    ``flatten=False`` gives ``(N, 1, 28, 28)`` images (what ``ToTensor`` makes).
    """
    images, labels = load_mnist(split=split, flatten=True, standardize=standardize)
    if not flatten:
        images = images.reshape(-1, 1, 28, 28)
    return images, labels

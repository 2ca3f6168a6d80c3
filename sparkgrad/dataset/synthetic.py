"""``synthetic:N``: any number of seeded, learnable, MNIST-shaped images, made on the spot.

For scaling runs the content of the images matters less than their count, but a model
should still be able to learn something, so that a falling loss shows the pipeline works.
Each of the 10 classes gets a random *template* (a few bright blobs on a 28×28 grid);
an image is its class template at a random brightness plus noise, clipped to 0..255.
A linear model separates the classes well; a nearest-template rule nearly perfectly.

The templates depend only on ``seed``, so ``train`` and ``test`` share them; the images
of each split come from their own stream of the same seed. ``train`` has ``N`` images,
``test`` has ``max(1, N // 5)``.
"""

from __future__ import annotations

import numpy as np

from sparkgrad.dataset.mnist_files import check_split
from sparkgrad.errors import ConfigError

NUM_CLASSES = 10
SIDE = 28


def _templates(rng: np.random.Generator, blobs: int = 4) -> np.ndarray:
    """10 float templates in [0, 1]: each the sum of a few Gaussian blobs."""
    y, x = np.mgrid[0:SIDE, 0:SIDE]
    out = np.zeros((NUM_CLASSES, SIDE, SIDE))
    for c in range(NUM_CLASSES):
        for _ in range(blobs):
            cy, cx = rng.uniform(4, SIDE - 4, size=2)
            width = rng.uniform(1.5, 3.5)
            out[c] += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * width**2))
    return np.clip(out, 0.0, 1.0)


def make_synthetic(n: int, split: str = "train", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 images (M, 28, 28), int64 labels (M,))`` with ``M = n`` for train.

    The classes are balanced (``labels`` cycle 0..9, then are shuffled).
    """
    check_split(split)
    n = int(n)
    if n < 1:
        raise ConfigError(f"synthetic:N needs N >= 1 images, found {n}")
    templates = _templates(np.random.default_rng(seed))
    count = n if split == "train" else max(1, n // 5)
    rng = np.random.default_rng([seed, 1 if split == "train" else 2])
    labels = rng.permutation(np.arange(count) % NUM_CLASSES).astype(np.int64)
    brightness = rng.uniform(0.6, 1.0, size=(count, 1, 1))
    noise = rng.normal(0.0, 0.15, size=(count, SIDE, SIDE))
    images = np.clip(templates[labels] * brightness + noise, 0.0, 1.0)
    return np.round(images * 255).astype(np.uint8), labels

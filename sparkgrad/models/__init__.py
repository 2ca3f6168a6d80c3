"""Models built from ``sparkgrad.nn``, one short file each (``models`` imports only ``autodiff``).

- :mod:`.mlp`: the multi-layer perceptron ``build_mlp(hidden, seed)``, the default model.
- :mod:`.cnn`: ``MnistCNN``, the convolutional network of PyTorch's MNIST example, and
  ``build_cnn(seed)``.
"""

from sparkgrad.models.cnn import MnistCNN, build_cnn
from sparkgrad.models.mlp import architecture, build_mlp

__all__ = ["MnistCNN", "architecture", "build_cnn", "build_mlp"]

"""Models built from ``sparkgrad.nn``, one short file each (``models`` imports only ``autodiff``).

- :mod:`.cnn`: ``MnistCNN``, the convolutional network of PyTorch's MNIST example, and
  ``build_cnn(seed)``.
"""

from sparkgrad.models.cnn import MnistCNN, build_cnn

__all__ = ["MnistCNN", "build_cnn"]

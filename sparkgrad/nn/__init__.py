"""``sparkgrad.nn``: layers and losses (they live in :mod:`sparkgrad.autodiff.nn`).

``sparkgrad.nn.parallel`` (``DistributedDataParallel``) belongs to the parallel layer, which
sits above this one: it is imported on first use (``sg.nn.parallel``, or
``import sparkgrad.nn.parallel``), never by ``import sparkgrad``.
"""

from sparkgrad.autodiff.nn import *
from sparkgrad.nn import functional, init, utils


def __getattr__(name: str):
    if name == "parallel":
        import importlib

        return importlib.import_module("sparkgrad.nn.parallel")
    raise AttributeError(f"module 'sparkgrad.nn' has no attribute {name!r}")

"""sparkgrad: a from-scratch autograd engine whose distributed training runs on Spark.

Everyday names live here, as in ``torch``::

    import sparkgrad as sg
    x = sg.tensor([[1.0, 2.0]], requires_grad=True)
    model = sg.nn.Sequential(sg.nn.Linear(2, 4), sg.nn.ReLU(), sg.nn.Linear(4, 1))
    opt = sg.optim.SGD(model.parameters(), lr=0.1)
"""

from sparkgrad.autodiff import *  # noqa: F403
from sparkgrad.autodiff import functional as _F
from sparkgrad.autodiff.functional import (
    abs,
    all,
    allclose,
    amax,
    amin,
    any,
    argmax,
    argmin,
    cat,
    chunk,
    clamp,
    clip,
    eq,
    equal,
    exp,
    flatten,
    gather,
    ge,
    gt,
    isclose,
    le,
    log,
    log_softmax,
    lt,
    masked_fill,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mm,
    ne,
    norm,
    permute,
    relu,
    reshape,
    sigmoid,
    softmax,
    split,
    sqrt,
    squeeze,
    stack,
    std,
    sum,
    t,
    tanh,
    transpose,
    unsqueeze,
    var,
    where,
)

__version__ = "0.1.0"

from numpy import bool_, float16, float32, float64, int32, int64  # dtypes, as torch.float32

from sparkgrad import autograd, nn, optim  # noqa: E402  (after the names they build on)
from sparkgrad.export.serialization import load, save  # noqa: E402

# Subpackages that ``import torch`` also makes reachable as attributes (``torch.utils.data``,
# ``torch.distributed``, ``torch.multiprocessing``) are imported on first use here, so
# ``import sparkgrad`` stays light and never pulls in the layers above autodiff.
_LAZY_SUBPACKAGES = ("distributed", "multiprocessing", "utils")


def __getattr__(name: str):
    if name in _LAZY_SUBPACKAGES:
        import importlib

        return importlib.import_module(f"sparkgrad.{name}")
    raise AttributeError(f"module 'sparkgrad' has no attribute {name!r}")

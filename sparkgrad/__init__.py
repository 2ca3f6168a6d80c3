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

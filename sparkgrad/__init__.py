"""sparkgrad: a from-scratch autograd engine whose distributed training runs on Spark.

Everyday names live here, as in ``torch``::

    import sparkgrad as sg
    x = sg.tensor([[1.0, 2.0]], requires_grad=True)
    model = sg.nn.Sequential(sg.nn.Linear(2, 4), sg.nn.ReLU(), sg.nn.Linear(4, 1))
    opt = sg.optim.SGD(model.parameters(), lr=0.1)
"""

from sparkgrad.autodiff import *  # noqa: F403
from sparkgrad.autodiff import functional as _F
from sparkgrad.autodiff.device import device, get_default_device, set_default_device
from sparkgrad.autodiff.functional import (
    abs,
    acos,
    acosh,
    all,
    allclose,
    amax,
    amin,
    any,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    argmax,
    argmin,
    asin,
    asinh,
    atan,
    atan2,
    atanh,
    bmm,
    cat,
    ceil,
    chunk,
    clamp,
    clip,
    clone,
    cos,
    cosh,
    dot,
    eq,
    equal,
    erf,
    exp,
    exp2,
    expm1,
    fix,
    flatten,
    floor,
    gather,
    ge,
    gt,
    isclose,
    le,
    log,
    log1p,
    log2,
    log10,
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
    narrow,
    ne,
    norm,
    permute,
    pow,
    reciprocal,
    relu,
    reshape,
    round,
    rsqrt,
    sigmoid,
    sign,
    sin,
    sinh,
    softmax,
    split,
    sqrt,
    square,
    squeeze,
    stack,
    std,
    sum,
    t,
    tan,
    tanh,
    transpose,
    tril,
    triu,
    trunc,
    unsqueeze,
    var,
    where,
)

__version__ = "0.1.0"

# dtypes, as torch.float32 & co. They shadow the builtins float/int/bool in this module, so
# nothing below this line may use those builtins.
from numpy import bool_  # noqa: E402 - kept: older code spells torch.bool this way

from sparkgrad import accelerator, amp, autograd, backends, cuda, nn, optim  # noqa: E402
from sparkgrad.autodiff.amp import autocast, get_autocast_dtype, is_autocast_enabled  # noqa: E402
from sparkgrad.autodiff.dtypes import *  # noqa: E402, F403 - float32, long, bool, ...
from sparkgrad.autodiff.dtypes import bool, float, int  # noqa: E402, F401, A004
from sparkgrad.export.serialization import load, save  # noqa: E402

# Subpackages that ``import torch`` also makes reachable as attributes (``torch.utils.data``,
# ``torch.distributed``, ``torch.multiprocessing``) are imported on first use here, so
# ``import sparkgrad`` stays light and never pulls in the layers above autodiff.
_LAZY_SUBPACKAGES = ("distributed", "multiprocessing", "profiler", "utils")


def __getattr__(name: str):
    if name in _LAZY_SUBPACKAGES:
        import importlib

        return importlib.import_module(f"sparkgrad.{name}")
    raise AttributeError(f"module 'sparkgrad' has no attribute {name!r}")

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
    cat,
    ceil,
    chunk,
    clamp,
    clip,
    cos,
    cosh,
    erf,
    exp,
    exp2,
    expm1,
    fix,
    flatten,
    floor,
    log,
    log1p,
    log2,
    log10,
    log_softmax,
    matmul,
    maximum,
    mean,
    minimum,
    permute,
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

from sparkgrad import accelerator, backends, cuda, nn, optim  # noqa: E402  (after their bases)
from sparkgrad.autodiff.dtypes import *  # noqa: E402, F403 - float32, long, bool, ...
from sparkgrad.autodiff.dtypes import bool, float, int  # noqa: E402, F401, A004

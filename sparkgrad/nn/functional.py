"""``sparkgrad.nn.functional`` (``F``): the functional ops, as ``torch.nn.functional``."""

from sparkgrad.autodiff.functional import *  # noqa: F403
from sparkgrad.autodiff.functional import (  # noqa: F401 - names that start with no underscore but shadow builtins
    abs,
    max,
    min,
    pow,
    sum,
)

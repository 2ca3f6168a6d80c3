"""``sparkgrad.nn.functional`` (``F``): the functional ops, as ``torch.nn.functional``."""

from sparkgrad.autodiff.functional import *  # noqa: F403
from sparkgrad.autodiff.functional import (  # noqa: F401 - names that start with no underscore but shadow builtins
    abs,
    max,
    min,
    pow,
    sum,
)
from sparkgrad.autodiff.nn.attention import multi_head_attention_forward  # noqa: F401 - torch's F.

"""``sparkgrad.nn.utils``: ``clip_grad_norm_`` and friends."""

from sparkgrad.autodiff.nn.utils import *  # noqa: F403

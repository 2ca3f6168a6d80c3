"""``sparkgrad.nn.init``: weight initialisers (they live in :mod:`sparkgrad.autodiff.nn.init`)."""

from sparkgrad.autodiff.nn.init import *  # noqa: F403

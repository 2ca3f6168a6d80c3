"""``sparkgrad.optim``: optimizers (they live in :mod:`sparkgrad.autodiff.optim`)."""

from sparkgrad.autodiff.optim import *  # noqa: F403
from sparkgrad.optim import lr_scheduler

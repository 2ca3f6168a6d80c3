"""``sparkgrad.optim.lr_scheduler``: learning-rate schedules."""

from sparkgrad.autodiff.optim.lr_scheduler import *  # noqa: F403

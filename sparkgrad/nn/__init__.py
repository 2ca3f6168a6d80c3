"""``sparkgrad.nn``: layers and losses (they live in :mod:`sparkgrad.autodiff.nn`)."""

from sparkgrad.autodiff.nn import *
from sparkgrad.nn import functional, init, utils

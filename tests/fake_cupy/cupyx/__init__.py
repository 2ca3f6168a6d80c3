"""``cupyx`` of sparkgrad's CuPy stand-in: ``cupyx.scipy.special`` (erf ...)."""

from . import scipy

__all__ = ["scipy"]

"""``cupy.lib``: the one piece the project uses, ``stride_tricks.as_strided``."""

from . import stride_tricks

__all__ = ["stride_tricks"]

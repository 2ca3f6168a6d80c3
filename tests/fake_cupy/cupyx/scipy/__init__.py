"""``cupyx.scipy`` of the stand-in: only ``special``."""

from . import special

__all__ = ["special"]

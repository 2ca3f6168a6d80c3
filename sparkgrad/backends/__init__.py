"""``sparkgrad.backends``: ``torch.backends``' availability flags, for code that asks them.

sparkgrad runs on NumPy (cpu) and CuPy (cuda) only: Apple's MPS is never available, and
cuDNN is not used (its flags are accepted and change nothing).
"""

from sparkgrad.backends import cudnn, mps

__all__ = ["cudnn", "mps"]

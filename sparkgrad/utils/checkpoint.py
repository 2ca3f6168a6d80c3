"""``sparkgrad.utils.checkpoint``: PyTorch's ``torch.utils.checkpoint`` path.

The implementation and its lesson live in :mod:`sparkgrad.autodiff.checkpoint`.
"""

from sparkgrad.autodiff.checkpoint import checkpoint, checkpoint_sequential

__all__ = ["checkpoint", "checkpoint_sequential"]

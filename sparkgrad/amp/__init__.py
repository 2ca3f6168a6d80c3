"""``sparkgrad.amp``: the ``torch.amp`` path (``sg.amp.autocast``, ``sg.amp.GradScaler``);
the code lives in :mod:`sparkgrad.autodiff.amp`."""

from sparkgrad.autodiff.amp import *  # noqa: F403
from sparkgrad.autodiff.amp import __all__  # noqa: F401

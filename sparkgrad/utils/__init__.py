"""``sparkgrad.utils``: PyTorch's ``torch.utils`` paths (``.data``, ``.checkpoint``)."""

from sparkgrad.utils import checkpoint, data

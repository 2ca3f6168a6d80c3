"""``sparkgrad.utils``: PyTorch's ``torch.utils`` paths (``sparkgrad.utils.data``)."""

from sparkgrad.utils import data

"""``sparkgrad.nn.parallel``: ``torch.nn.parallel.DistributedDataParallel``.

It lives in :mod:`sparkgrad.parallel.data.ddp` (the parallel layer, above autodiff and comms),
so ``import sparkgrad`` does not import it: ``sg.nn.parallel`` is imported on first use.
PyTorch's single-process ``nn.DataParallel`` (one process, several GPUs) has no
counterpart here; ``sparkgrad.parallel.DataParallel`` is DDP, one process per device.
"""

from sparkgrad.parallel.data.ddp import DistributedDataParallel

__all__ = ["DistributedDataParallel"]

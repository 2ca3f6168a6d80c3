"""``DistributedDataParallel``: :class:`DataParallel` with ``torch.nn.parallel``'s signature.

The DDP tutorial's lines run as they are::

    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    ddp_model = DistributedDataParallel(ToyModel())        # or device_ids=[rank] on a GPU
    loss_fn(ddp_model(x), y).backward()                     # gradients averaged here
    optimizer.step()

The work is :class:`~sparkgrad.parallel.data.data_parallel.DataParallel`'s (read it: bucketed
``all_reduce`` launched from gradient hooks during backward). This class only maps
PyTorch's arguments onto it, with their meaning:

- ``bucket_cap_mb`` (default 25) is the bucket size; with the default, the first bucket
  is 1 MB so that communication starts early (PyTorch 2.13: a ``bucket_cap_mb`` you give
  applies to the first bucket too);
- ``find_unused_parameters=True`` counts a parameter that gets no gradient as a zero
  gradient instead of raising (see DataParallel for the one difference from PyTorch);
- ``forward_sync_buffers`` (PyTorch 2.13's name; ``broadcast_buffers`` is the deprecated
  older one) copies rank 0's buffers at each training forward; ``init_sync=True``
  broadcasts rank 0's parameters and buffers at construction (``False`` skips it: you
  promise the replicas are equal). As in PyTorch 2.13, ``broadcast_buffers=False`` also
  leaves the buffers out of that first broadcast, ``forward_sync_buffers=False`` does not;
- ``device_ids``/``output_device``: a CPU module takes ``None`` (or ``[]``), as in PyTorch,
  and anything else raises its ``ValueError``. A CUDA module takes ``None`` or one id,
  which must be this process's current CuPy device (sparkgrad's ``"cuda"``; pick it with
  ``cupy.cuda.Device(rank).use()`` or ``CUDA_VISIBLE_DEVICES`` before building the model);
  with an id given, forward moves Tensor inputs to the GPU, as PyTorch does. ``dim`` is
  accepted and stored: PyTorch uses it only to scatter inputs over several devices, which
  one process per device never does;
- ``state_dict()`` has PyTorch DDP's ``module.`` prefix (``DataParallel``'s has none);
- ``gradient_as_bucket_view``, ``static_graph``, ``check_reduction`` are accepted and
  change nothing here: gradients are always copied out of the buckets (same values, one
  extra copy), and the used-parameter walk runs every iteration, so a static graph needs
  no declaring.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import get_array_module
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.data.data_parallel import DataParallel

DEFAULT_BUCKET_CAP_MB = 25
FIRST_BUCKET_MB = 1


def _device_index(d: Any) -> int | None:
    """The GPU index named by ``0``, ``"cuda"``, ``"cuda:1"`` or a device (None for CPU)."""
    if isinstance(d, int) and not isinstance(d, bool):
        return d
    kind, _, index = str(d).lower().partition(":")
    if kind != "cuda":
        return None
    return int(index) if index.isdigit() else int(get_array_module("cuda").cuda.runtime.getDevice())


def _uses_device_ids(module: Module, device_ids: Any, output_device: Any) -> bool:
    """PyTorch's checks of ``device_ids``/``output_device``; True if inputs go to the GPU."""
    params = list(module.parameters())
    if not any(p.requires_grad for p in params):
        raise RuntimeError(
            "DistributedDataParallel is not needed when a module doesn't have any parameter "
            "that requires a gradient."
        )
    if device_ids is not None and len(device_ids) > 1:
        raise ValueError("device_ids can only be None or contain a single element.")
    devices = {p.device for p in params}
    if len(devices) != 1:
        raise ValueError(
            "DistributedDataParallel's input module must be on the same type of devices, "
            f"but input module parameters locate in {devices}."
        )
    if not device_ids or devices == {"cpu"}:
        if device_ids or output_device is not None:
            raise ValueError(
                "DistributedDataParallel device_ids and output_device arguments only work "
                "with single-device/multiple-device GPU modules or CPU modules, but got "
                f"device_ids {device_ids}, output_device {output_device}, and module "
                f"parameters {devices}."
            )
        return False
    current = int(get_array_module("cuda").cuda.runtime.getDevice())
    for d in [device_ids[0]] + ([] if output_device is None else [output_device]):
        if _device_index(d) != current:
            raise ValueError(
                f"DistributedDataParallel: device {d!r} is not this process's GPU: "
                f"sparkgrad's 'cuda' is the current CuPy device ({current}). Select the "
                "GPU with cupy.cuda.Device(index).use() (or CUDA_VISIBLE_DEVICES) before "
                "building the model, then pass that index"
            )
    return True


def _to_cuda(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.to("cuda")
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cuda(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_cuda(v) for k, v in value.items()}
    return value


class DistributedDataParallel(DataParallel):
    """Data parallelism over the ranks of a process group (``torch.nn.parallel`` signature).

    ``.module`` is the wrapped model; :meth:`no_sync` accumulates gradients locally.
    See the module docstring for what each argument means here.
    """

    def __init__(
        self,
        module: Module,
        device_ids: Any = None,
        output_device: Any = None,
        dim: int = 0,
        broadcast_buffers: bool | None = None,
        init_sync: bool = True,
        process_group: Any = None,
        bucket_cap_mb: float | None = None,
        find_unused_parameters: bool = False,
        check_reduction: bool = False,
        gradient_as_bucket_view: bool = False,
        static_graph: bool = False,
        *,
        forward_sync_buffers: bool | None = None,
    ) -> None:
        if not isinstance(module, Module):
            raise ConfigError(
                f"DistributedDataParallel wraps a Module, found {type(module).__name__}"
            )
        move_inputs = _uses_device_ids(module, device_ids, output_device)
        if forward_sync_buffers is not None:  # PyTorch 2.13: it wins over broadcast_buffers
            sync_buffers, init_buffers = bool(forward_sync_buffers), True
        else:
            sync_buffers = init_buffers = broadcast_buffers is None or bool(broadcast_buffers)
        super().__init__(
            module,
            process_group=process_group,
            bucket_cap_mb=DEFAULT_BUCKET_CAP_MB if bucket_cap_mb is None else bucket_cap_mb,
            broadcast_buffers=sync_buffers,
            find_unused_parameters=find_unused_parameters,
            first_bucket_mb=FIRST_BUCKET_MB if bucket_cap_mb is None else bucket_cap_mb,
            init_sync=False,
        )
        if init_sync:
            params = [p for p in module.parameters() if p.requires_grad]
            self._broadcast(params + (list(module.buffers()) if init_buffers else []))
        self.forward_sync_buffers = sync_buffers
        self.device_ids = [_device_index(d) for d in device_ids] if move_inputs else None
        self.output_device = self.device_ids[0] if move_inputs else None
        self.dim = dim
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.static_graph = static_graph
        self._move_inputs = move_inputs

    def state_dict(
        self, destination: dict | None = None, prefix: str = "", keep_vars: bool = False
    ) -> Any:
        """PyTorch DDP's keys: the wrapped module's under ``module.`` (``module.net1.weight``).

        A checkpoint of ``ddp_model.state_dict()`` therefore has the keys PyTorch's has;
        load it back with ``ddp_model.load_state_dict`` (which also takes plain keys), or into
        the bare model through ``ddp_model.module.state_dict()`` when saving. (The engine's
        :class:`DataParallel` keeps plain keys: its checkpoints load into the bare model.)
        """
        return Module.state_dict(self, destination, prefix, keep_vars)

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        """As :meth:`DataParallel.forward`; inputs go to the GPU first when device_ids is set."""
        if self._move_inputs:
            inputs, kwargs = _to_cuda(inputs), _to_cuda(kwargs)
        return super().forward(*inputs, **kwargs)

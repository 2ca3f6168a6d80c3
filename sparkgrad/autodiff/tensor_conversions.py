"""``TensorConversions``: ``t.to(...)`` and its shorthands (``float``, ``cuda``, ``long``...).

Every form of ``torch.Tensor.to`` ends in two differentiable ops: a cast
(:func:`~sparkgrad.autodiff.functional.cast`) and a move between devices
(:func:`~sparkgrad.autodiff.functional.move`). A mix-in of
:class:`~sparkgrad.autodiff.tensor.Tensor`, kept apart so that file stays about the data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sparkgrad.autodiff.backend import device_of

if TYPE_CHECKING:
    from sparkgrad.autodiff.tensor import Tensor


class TensorConversions:
    """Dtype and device conversions of a :class:`~sparkgrad.autodiff.tensor.Tensor`."""

    __slots__ = ()  # Tensor declares its own slots

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """``t.to("cuda")``, ``t.to(sg.float64)``, ``t.to(other)``, ``t.to("cpu", sg.float32)``,
        ``t.to(device=..., dtype=...)``: every form of ``torch.Tensor.to``. Differentiable;
        ``self`` itself when nothing changes (and ``copy=False``)."""
        from sparkgrad.autodiff import functional as F
        from sparkgrad.autodiff.device import parse_to_args

        device, dtype, _, copy = parse_to_args(*args, **kwargs)
        out = self
        if dtype is not None and dtype != self.dtype:
            out = F.cast(out, dtype)
        if device is not None and device.type != device_of(out.array):
            out = F.move(out, device.type)
        if copy and out is self:
            out = F.clone(self)
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def float(self) -> Tensor:
        return self.to(np.float32)

    def double(self) -> Tensor:
        return self.to(np.float64)

    def half(self) -> Tensor:
        return self.to(np.float16)

    def bfloat16(self) -> Tensor:
        from sparkgrad.autodiff import dtypes

        if dtypes._bfloat16 is None:
            raise TypeError("bfloat16 needs the ml_dtypes package: pip install ml_dtypes")
        return self.to(dtypes._bfloat16)

    def long(self) -> Tensor:
        return self.to(np.int64)

    def int(self) -> Tensor:
        return self.to(np.int32)

    def bool(self) -> Tensor:
        return self.to(np.bool_)

    def type(self, dtype: Any = None) -> Any:
        """The dtype's PyTorch-style name (``torch.FloatTensor``), or a cast to ``dtype``."""
        if dtype is None:
            from sparkgrad.autodiff.versions import torch_type_name

            return f"sparkgrad.{torch_type_name(self.dtype)}Tensor"
        return self.to(dtype)

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

"""``Parameter``: a tensor that a :class:`~sparkgrad.nn.Module` owns and an optimizer updates.

A parameter is an ordinary :class:`~sparkgrad.Tensor` with two differences, exactly as
``torch.nn.Parameter``:

* it requires a gradient by default (it is what training changes);
* assigning one to a module attribute (``self.weight = Parameter(...)``) *registers* it,
  so ``module.parameters()``, ``state_dict()`` and ``zero_grad()`` find it.

Results of ops on a parameter are plain tensors: ``w * 2`` is not a parameter.
"""

from __future__ import annotations

from typing import Any

from sparkgrad.autodiff.backend import get_array_module
from sparkgrad.autodiff.dtypes import get_default_dtype
from sparkgrad.autodiff.tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A leaf tensor registered by modules; ``requires_grad=True`` unless told otherwise.

    ``Parameter(t)`` shares memory with the tensor (or array) ``t``, as in PyTorch;
    ``Parameter()`` is an empty parameter of the default dtype.
    """

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = get_array_module("cpu").empty((0,), dtype=get_default_dtype())
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

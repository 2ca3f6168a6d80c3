"""``DenseLayer`` (also ``Linear``): the fully connected layer ``y = x Wᵀ + b``.

The weight has PyTorch's shape ``(out_features, in_features)``, so state dicts move
between sparkgrad and PyTorch unchanged. The forward is one fused op
(:func:`sparkgrad.nn.functional.linear`): one matmul, the bias added in place, and one
node in the graph instead of three.

Default initialisation is PyTorch's ``nn.Linear`` distribution, drawn from sparkgrad's
seeded generator: weight and bias both from U(-1/sqrt(in_features), 1/sqrt(in_features))
(the weight via ``kaiming_uniform_(a=sqrt(5))``), weight first, then bias. After
``sg.manual_seed(s)`` the same model always gets the same numbers.

Naming: the class is ``DenseLayer`` and ``Linear`` is the same class (``Linear is
DenseLayer``). It prints as ``Linear(...)``, so ``print(model)`` reads exactly like the
PyTorch model it mirrors; subclasses print their own name.
"""

from __future__ import annotations

import math
from typing import Any

from sparkgrad.autodiff.backend import get_array_module
from sparkgrad.autodiff.device import resolve
from sparkgrad.autodiff.dtypes import get_default_dtype
from sparkgrad.autodiff.nn import init
from sparkgrad.autodiff.nn.module import Module
from sparkgrad.autodiff.nn.parameter import Parameter
from sparkgrad.autodiff.ops.neural import Linear as _LinearOp
from sparkgrad.autodiff.tensor import Tensor

__all__ = ["DenseLayer", "Linear", "Identity"]


def empty_parameter(*shape: int, device: Any = None, dtype: Any = None) -> Parameter:
    """An uninitialised parameter of ``shape`` on ``device`` (default dtype and device unless
    given, as torch's layers)."""
    xp = get_array_module(resolve(device))
    return Parameter(xp.empty(shape, dtype=get_default_dtype() if dtype is None else dtype))


class DenseLayer(Module):
    """``y = x @ weight.T + bias`` for inputs of shape ``(*, in_features)``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = empty_parameter(out_features, in_features, device=device, dtype=dtype)
        if bias:
            self.bias = empty_parameter(out_features, device=device, dtype=dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        # The hot path: read the parameters straight from their dict (skipping the
        # __getattr__ fallback) and call the fused op directly.
        params = self._parameters
        return _LinearOp.apply(x, params["weight"], params["bias"])

    def _get_name(self) -> str:
        return "Linear" if type(self) is DenseLayer else type(self).__name__

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


Linear = DenseLayer


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. for a removed layer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x

"""``sparkgrad.nn.init``: fill weights in place with PyTorch's initialisation schemes.

Every function draws its numbers on the CPU with NumPy from sparkgrad's seeded generator
(:func:`sparkgrad.manual_seed`), casts them to the tensor's dtype and writes them into the
tensor's existing array (moving them to its device first). So:

* the same seed gives the same weights on ``cpu`` and ``cuda`` and on every rank;
* the update is truly in place: views of the array (e.g. a flat gradient bucket) see it;
* no graph is recorded, as under ``torch.no_grad()``.

The *distributions* are PyTorch's, the *numbers* are not (the generators differ):
``kaiming_uniform_(w, a=sqrt(5))`` draws from U(-1/sqrt(fan_in), 1/sqrt(fan_in)) in both.

Fan-in and fan-out follow PyTorch's convention for a weight of shape ``(out, in, *kernel)``:
``fan_in = in * prod(kernel)`` and ``fan_out = out * prod(kernel)``.
"""

from __future__ import annotations

import math

import numpy as np

from sparkgrad.autodiff.backend import to_device
from sparkgrad.autodiff.random import default_generator
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError, ShapeError

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    # private in name, public in practice (custom reset_parameters use them, as in torch)
    "_calculate_fan_in_and_fan_out",
    "_calculate_correct_fan",
]

_LINEAR_LIKE = (
    "linear", "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid",
)  # fmt: skip


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps activations' variance steady through ``nonlinearity``.

    linear/conv/sigmoid: 1, tanh: 5/3, relu: sqrt(2), leaky_relu: sqrt(2/(1+slope²)),
    selu: 3/4 (the values of ``torch.nn.init.calculate_gain``).
    """
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ConfigError(f"negative_slope must be a number, found {param!r}")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ConfigError(f"unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of shape ``(out, in, *kernel)``."""
    if tensor.ndim < 2:
        raise ShapeError(
            "fan in and fan out can not be computed for a tensor with fewer than 2 dimensions; "
            f"found shape {tensor.shape}"
        )
    receptive_field = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ConfigError(f"mode must be 'fan_in' or 'fan_out', found {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _write(tensor: Tensor, values: np.ndarray) -> Tensor:
    """Copy freshly drawn CPU values into the tensor's own array, on its device."""
    tensor.array[...] = to_device(values.astype(tensor.dtype, copy=False), tensor.device)
    return tensor


def _gen(generator: np.random.Generator | None) -> np.random.Generator:
    # looked up at call time: manual_seed() replaces the global generator
    return default_generator() if generator is None else generator


def uniform_(
    tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Fill with samples of U(a, b)."""
    return _write(tensor, _gen(generator).uniform(a, b, size=tensor.shape))


def normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Fill with samples of N(mean, std²)."""
    return _write(tensor, _gen(generator).normal(mean, std, size=tensor.shape))


def trunc_normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Fill with N(mean, std²) samples, redrawing any that fall outside [a, b]."""
    if not a < b:
        raise ConfigError(f"trunc_normal_ needs a < b, found a={a}, b={b}")
    rng = _gen(generator)
    values = rng.normal(mean, std, size=tensor.shape)
    outside = (values < a) | (values > b)
    while outside.any():  # each round keeps most draws, so this ends after a few rounds
        values[outside] = rng.normal(mean, std, size=int(outside.sum()))
        outside = (values < a) | (values > b)
    return _write(tensor, values)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with ``val``."""
    tensor.array.fill(val)
    return tensor


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def xavier_uniform_(
    tensor: Tensor, gain: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Glorot: U(-b, b) with b = gain·sqrt(6/(fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(
    tensor: Tensor, gain: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Glorot: N(0, std²) with std = gain·sqrt(2/(fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float | None:
    if 0 in tensor.shape:
        return None  # nothing to fill (PyTorch warns and returns)
    return calculate_gain(nonlinearity, a) / math.sqrt(_calculate_correct_fan(tensor, mode))


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> Tensor:
    """He: U(-b, b) with b = gain·sqrt(3/fan); ``a`` is the leaky_relu slope in the gain.

    ``nn.Linear`` uses ``a=sqrt(5)``: gain = sqrt(2/6), so b = 1/sqrt(fan_in).
    """
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> Tensor:
    """He: N(0, std²) with std = gain/sqrt(fan)."""
    std = _kaiming_std(tensor, a, mode, nonlinearity)
    if std is None:
        return tensor
    return normal_(tensor, 0.0, std, generator)

"""``state_dict`` and ``load_state_dict``: a model's weights as a flat dict of named tensors.

The names are the attribute path from the root module, joined by dots, exactly as in
PyTorch: ``Sequential(Linear, ReLU, Linear)`` gives ``0.weight, 0.bias, 2.weight,
2.bias`` (ReLU has no parameters, so index 1 is absent). Because the names match, a
sparkgrad state dict can be loaded into the equivalent ``torch.nn`` model and back
(see :mod:`sparkgrad.export` for the file format).

Loading here is *all-or-nothing*: every key and shape is checked before the first value
is copied, so a failed load never leaves a half-overwritten model behind.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

from sparkgrad.autodiff.backend import to_device
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import CheckpointError, ShapeError

__all__ = ["IncompatibleKeys"]


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` returns: the keys it did not find, and those it did not use."""

    missing_keys: list[str]
    unexpected_keys: list[str]

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        missing, unexpected = self.missing_keys, self.unexpected_keys
        return f"IncompatibleKeys(missing_keys={missing}, unexpected_keys={unexpected})"


def collect_state(module: Any, out: OrderedDict, prefix: str, keep_vars: bool) -> OrderedDict:
    """Own parameters, then own persistent buffers, then each child's (PyTorch's order)."""
    for name, param in module._parameters.items():
        if param is not None:
            out[prefix + name] = param if keep_vars else param.detach()
    for name, buf in module._buffers.items():
        if buf is not None and name not in module._non_persistent_buffers:
            out[prefix + name] = buf if keep_vars else buf.detach()
    for name, child in module._modules.items():
        if child is not None:
            collect_state(child, out, prefix + name + ".", keep_vars)
    return out


def _as_array(key: str, value: Any) -> Any:
    """The raw array of a sparkgrad Tensor, a NumPy/CuPy array or a torch tensor."""
    if isinstance(value, Tensor):
        return value.array
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # torch.Tensor, by duck typing
        return value.detach().cpu().numpy()
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return value
    raise CheckpointError(
        f"state_dict[{key!r}] must be a Tensor, a NumPy array or a torch tensor; "
        f"found {type(value).__name__}"
    )


def _keys(keys: list[str]) -> str:
    return ", ".join(repr(k) for k in keys)


def load_into(
    own: Mapping[str, Tensor], state_dict: Mapping[str, Any], strict: bool, model_name: str
) -> IncompatibleKeys:
    """Check ``state_dict`` against ``own`` (the model's tensors by name), then copy it in."""
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(
            f"expected a state_dict mapping names to tensors, found {type(state_dict).__name__}"
        )
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing key(s) in state_dict: {_keys(missing)}")
        if unexpected:
            parts.append(f"unexpected key(s) in state_dict: {_keys(unexpected)}")
        raise CheckpointError(
            f"Error(s) in loading state_dict for {model_name}: " + "; ".join(parts) + ". "
            "Is it a checkpoint of the same architecture? (strict=False loads the common keys)"
        )
    arrays, mismatched = {}, []
    for key, target in own.items():
        if key in state_dict:
            array = _as_array(key, state_dict[key])
            if tuple(array.shape) != target.shape:
                mismatched.append(
                    f"size mismatch for {key}: copying a param with shape {tuple(array.shape)} "
                    f"from checkpoint, the shape in current model is {target.shape}"
                )
            arrays[key] = array
    if mismatched:
        raise ShapeError(
            f"Error(s) in loading state_dict for {model_name}: " + "; ".join(mismatched)
        )
    for key, array in arrays.items():
        target = own[key]
        target.array[...] = to_device(array, target.device).astype(target.dtype, copy=False)
    return IncompatibleKeys(missing, unexpected)

"""``Optimizer``: the bookkeeping every optimizer shares, shaped like ``torch.optim.Optimizer``.

An optimizer owns

- ``param_groups``: a list of dicts, each ``{"params": [tensors], "lr": ..., ...}``. Every
  group carries its own hyper-parameters, so a model can train its head with a larger
  learning rate than its body. Schedulers change ``group["lr"]`` between steps.
- ``state``: a dict from parameter to that parameter's own dict of buffers (momentum,
  running averages, step count). Buffers are sparkgrad ``Tensor``\\ s, so a checkpoint can
  store them with safetensors; nothing here needs pickle.

A subclass only writes :meth:`Optimizer._update_group`: how one group's parameters move,
given their gradients. The update works on the raw arrays (``p.array``, ``p.grad.array``) in
place, with NumPy/CuPy ``out=`` arguments and preallocated buffers: after the first step,
a step allocates no memory at all. ``p.grad`` is only read, never written, because other
code (a gradient bucket, a hook) may share that array.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import array_module, get_array_module, to_device, to_numpy
from sparkgrad.autodiff.grad_mode import enable_grad, no_grad
from sparkgrad.autodiff.profiler import hooks as _prof
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


class Scratch:
    """Temporary arrays that survive from one step to the next.

    ``pair(like)`` returns two uninitialised arrays with ``like``'s shape, dtype and device
    (``take(like, n)``: ``n`` of them). Behind them is one flat buffer per (device, dtype),
    grown to ``n`` times the largest parameter seen, so every parameter reuses the same
    memory: after the first step no update allocates anything.
    """

    def __init__(self) -> None:
        self._flat: dict[tuple[Any, ...], Any] = {}

    def take(self, like: Any, n: int) -> tuple[Any, ...]:
        key = (type(like), like.dtype, getattr(like, "device", None))
        flat, size = self._flat.get(key), like.size
        if flat is None or flat.size < n * size:
            flat = self._flat[key] = array_module(like).empty(n * size, dtype=like.dtype)
        return tuple(flat[i * size : (i + 1) * size].reshape(like.shape) for i in range(n))

    def pair(self, like: Any) -> tuple[Any, Any]:
        return self.take(like, 2)  # type: ignore[return-value]


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad``, ``step``, state dicts.

    Args:
        params: the tensors to optimize (e.g. ``model.parameters()``), or a list of dicts
            ``{"params": [...], "lr": ...}`` that each form a group with its own settings.
        defaults: the hyper-parameters a group gets when it does not set them itself.
    """

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._scratch = Scratch()
        if isinstance(params, Tensor):
            raise ConfigError(
                "params should be an iterable of Tensors or of dicts, found a single Tensor; "
                "pass [tensor] or model.parameters()"
            )
        groups = list(params)
        if not groups:
            raise ConfigError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ---- groups ---------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (e.g. a layer unfrozen for fine-tuning) with its settings.

        Settings the group does not give come from ``self.defaults``.
        """
        if not isinstance(param_group, dict):
            raise ConfigError(f"a param group must be a dict, found {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set) or params is None:
            raise ConfigError(
                "a param group needs 'params' as an ordered list of Tensors "
                f"(sets change order between runs), found {type(params).__name__}"
            )
        group["params"] = params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise ConfigError(
                    f"optimizer can only optimize Tensors, found {type(p).__name__} at index {i}"
                )
            if not p.is_leaf:
                raise ConfigError("can't optimize a non-leaf Tensor; use a leaf (e.g. .detach())")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_group(group)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids) or seen.intersection(ids):
            raise ConfigError(
                "some parameters appear twice (in one group or in two groups); "
                "each parameter must belong to exactly one group"
            )
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Validate one group's hyper-parameters (subclasses raise ``ConfigError``)."""

    # ---- gradients ------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients before the next backward.

        ``set_to_none=True`` (the default, as in PyTorch) drops them, which is cheaper and
        lets backward write fresh arrays; ``False`` fills the existing arrays with zeros.
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.array.fill(0)

    # ---- the update -----------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; return ``closure()``'s loss if given.

        ``closure`` re-evaluates the model and calls backward (some optimizers need that);
        it runs with gradients enabled, the update itself without.
        """
        span = None
        if _prof.active:  # sg.profiler records the step under PyTorch's name; off: one read
            span = _prof.begin(f"Optimizer.step#{type(self).__name__}.step", "optimizer")
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._update_group(group)
        if span is not None:
            _prof.end(span)
        return loss

    def _update_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _update_group")

    # ---- saving and loading ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state in PyTorch's layout.

        ``{"state": {index: {name: Tensor}}, "param_groups": [{..., "params": [indices]}]}``
        where parameters are numbered in group order. As in PyTorch, the tensors are the live
        buffers, not copies: save them before the next step.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and buffers saved by :meth:`state_dict` (or by PyTorch).

        Values may be sparkgrad Tensors, NumPy/CuPy arrays or torch tensors; each buffer is
        copied onto its parameter's device and dtype (``step`` stays a float32 scalar).
        Indices may be ints or strings (as JSON writes them).
        """
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ConfigError("expected a dict with keys 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ConfigError(
                f"loaded state dict has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        by_index: dict[int, Tensor] = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ConfigError(
                    f"parameter group {i} has {len(saved['params'])} parameters in the "
                    f"loaded state dict and {len(group['params'])} in this optimizer"
                )
            by_index.update({int(k): p for k, p in zip(saved["params"], group["params"])})
        self.state = defaultdict(dict)
        for key, saved_state in state_dict["state"].items():
            if int(key) not in by_index:
                raise ConfigError(f"loaded state refers to parameter {key}, which no group has")
            p = by_index[int(key)]
            self.state[p] = {name: _load_value(name, v, p) for name, v in saved_state.items()}
        for i, saved in enumerate(saved_groups):
            group = {k: v for k, v in saved.items() if k != "params"}
            group["params"] = self.param_groups[i]["params"]
            self.param_groups[i] = group

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"


def _load_value(name: str, value: Any, param: Tensor) -> Any:
    """A saved buffer as a fresh Tensor on ``param``'s device and dtype (``step``: float32)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Tensor):
        value = value.array
    elif hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if name == "step":
        host = to_numpy(value) if hasattr(value, "shape") else value
        return Tensor._wrap(np.array(host, dtype=np.float32).reshape(()))
    xp = get_array_module(param.device)
    array = xp.array(
        to_device(value, param.device) if hasattr(value, "shape") else value,
        dtype=param.dtype,
        copy=True,
    )
    if array.shape != param.array.shape:
        raise ConfigError(
            f"state buffer '{name}' has shape {tuple(array.shape)}, "
            f"expected the parameter's shape {param.shape}"
        )
    return Tensor._wrap(array)

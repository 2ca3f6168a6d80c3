"""``Module``: the base class of every layer and model, as ``torch.nn.Module``.

A module is a tree. Assigning attributes builds it::

    class MLP(Module):
        def __init__(self):
            super().__init__()
            self.hidden = Linear(784, 256)   # a Module  -> registered as a child
            self.scale = Parameter(...)      # a Parameter -> registered as a parameter
            self.name = "mlp"                # anything else -> a plain attribute

``__setattr__`` sorts the values into three ordered dicts (``_parameters``, ``_buffers``,
``_modules``) and ``__getattr__`` finds them again. Everything else walks that tree:
``parameters()`` for the optimizer, ``state_dict()`` for checkpoints (keys such as
``hidden.weight`` or, in a ``Sequential``, ``0.weight``), ``train()``/``eval()`` for
dropout, ``to(device)`` to move the weights, and ``repr`` to print the architecture in
PyTorch's format.

Calling a module runs ``forward``. Forward hooks are supported, but a module without
hooks pays only for two empty-dict checks: ``__call__`` is on the hot path of training.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from sparkgrad.autodiff.backend import is_floating, normalize_device, to_device
from sparkgrad.autodiff.device import parse_to_args
from sparkgrad.autodiff.nn.hooks import RemovableHandle, add_hook, call_with_hooks
from sparkgrad.autodiff.nn.parameter import Parameter
from sparkgrad.autodiff.nn.state_dict import IncompatibleKeys, collect_state, load_into
from sparkgrad.autodiff.tensor import Tensor
from sparkgrad.errors import ConfigError

__all__ = ["Module"]


def _addindent(text: str, spaces: int) -> str:
    """Indent every line but the first (how PyTorch nests child reprs)."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    rest = [(" " * spaces + line) if line.strip() else "" for line in lines[1:]]
    return "\n".join([lines[0], *rest])


class Module:
    """Base class of layers and models: subclass it, set attributes, write ``forward``."""

    training: bool

    def __init__(self) -> None:
        # object.__setattr__: our own __setattr__ needs these dicts to exist first
        set_ = object.__setattr__
        set_(self, "training", True)
        set_(self, "_parameters", OrderedDict())
        set_(self, "_buffers", OrderedDict())
        set_(self, "_non_persistent_buffers", set())
        set_(self, "_modules", OrderedDict())
        set_(self, "_forward_pre_hooks", OrderedDict())
        set_(self, "_forward_hooks", OrderedDict())

    # ---- running ---------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._forward_pre_hooks or self._forward_hooks:
            return call_with_hooks(self, args, kwargs)
        return self.forward(*args, **kwargs)

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, args)`` runs before ``forward``; it may return new args."""
        return add_hook(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """``hook(module, args, output)`` runs after ``forward``; it may return a new output."""
        return add_hook(self._forward_hooks, hook)

    # ---- registration ----------------------------------------------------------------
    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or ``None``, e.g. a missing bias) under ``name``."""
        _check_name(self, name, "_parameters")
        _check_type(param, Parameter, "parameter", name)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a tensor that is state but not trained (saved in ``state_dict`` if persistent)."""
        _check_name(self, name, "_buffers")
        _check_type(tensor, Tensor, "buffer", name)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module (or ``None``) under ``name``."""
        _check_name(self, name, "_modules")
        _check_type(module, Module, "child module", name)
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        params, buffers, modules = d.get("_parameters"), d.get("_buffers"), d.get("_modules")
        if isinstance(value, Parameter):
            _forget(self, name, keep="_parameters")
            self.register_parameter(name, value)
        elif params is not None and name in params:
            _check_type(value, Parameter, "parameter", name)
            params[name] = None
        elif isinstance(value, Module):
            _forget(self, name, keep="_modules")
            self.add_module(name, value)
        elif modules is not None and name in modules:
            _check_type(value, Module, "child module", name)
            modules[name] = None
        elif buffers is not None and name in buffers:
            _check_type(value, Tensor, "buffer", name)
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails. Read through __dict__ so that a half-built
        # object (copy.deepcopy, unpickling) never recurses into __getattr__.
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        keys = [*super().__dir__(), *self._parameters, *self._buffers, *self._modules]
        return sorted(set(k for k in keys if not k[0].isdigit()))

    # ---- walking the tree ------------------------------------------------------------
    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """``(name, module)`` for this module and every descendant, depth first ("" is self)."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if self in memo:
                return
            memo.add(self)
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct children only, each once."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and module not in seen:
                seen.add(module)
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def _named_members(
        self, store: str, prefix: str, recurse: bool, remove_duplicate: bool
    ) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        owners = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for owner_name, owner in owners:
            for name, value in getattr(owner, store).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield owner_name + ("." if owner_name else "") + name, value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """``(name, parameter)`` pairs; a parameter shared by two layers appears once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter once, in registration order (what an optimizer is given)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def get_submodule(self, target: str) -> Module:
        """The module at a dotted path such as ``"encoder.0"`` ("" is self)."""
        module = self
        for part in target.split(".") if target else []:
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(
                    f"{type(module).__name__} has no submodule {part!r} (path {target!r})"
                )
            module = child
        return module

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call ``fn`` on every child (recursively) and then on self, e.g. custom init."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients ---------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active) for this module and, recursively, its children."""
        if not isinstance(mode, bool):
            raise ConfigError(f"training mode is expected to be boolean, found {mode!r}")
        object.__setattr__(self, "training", mode)
        for module in self.children():
            module.train(mode)  # a call, not an assignment, so subclasses may override train()
        return self

    def eval(self) -> Module:
        """Evaluation mode: the same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``grad = None`` (default, as PyTorch 2.x) or fill with 0."""
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.array.fill(0)

    # ---- device and dtype ------------------------------------------------------------
    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Move and/or cast parameters and buffers **in place**, with torch's arguments:
        ``to("cuda")``, ``to(sg.device("cuda", 0))``, ``to(0)``, ``to(sg.float64)``,
        ``to(other_tensor)``, ``to("cpu", sg.float64)``, ``to(device=..., dtype=...)``.

        Only floating parameters and buffers are cast (integer buffers keep their dtype),
        and the dtype must be floating. The Parameter objects stay the same (only their
        arrays change), so an optimizer built before ``to()`` still updates the right
        tensors. Gradients move along.
        """
        if "copy" in kwargs:
            raise RuntimeError(".to() does not accept copy argument")
        target, dtype, _non_blocking, copy = parse_to_args(*args, **kwargs)
        if copy:
            raise RuntimeError(".to() does not accept copy argument")
        device = None if target is None else normalize_device(target)
        if dtype is not None and not is_floating(dtype):
            raise TypeError(
                "nn.Module.to only accepts floating point or complex dtypes, "
                f"but got desired dtype={dtype}"
            )

        def convert(array: Any) -> Any:
            if dtype is not None and is_floating(array.dtype):
                array = array.astype(dtype, copy=False)
            return array if device is None else to_device(array, device)

        for tensor in [*self.parameters(), *self.buffers()]:
            tensor.array = convert(tensor.array)
            if tensor.grad is not None:
                tensor.grad.array = convert(tensor.grad.array)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device: Any = None) -> Module:
        """``to("cuda")``; ``cuda(1)`` or ``cuda("cuda:1")`` name the GPU, as torch."""
        return self.to("cuda" if device is None else device)

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    # ---- checkpoints -----------------------------------------------------------------
    def state_dict(
        self, destination: dict | None = None, prefix: str = "", keep_vars: bool = False
    ) -> OrderedDict:
        """Every parameter and persistent buffer by dotted name (``"0.weight"``).

        Values are detached tensors that share memory with the model (as PyTorch), so
        copy them if you need a snapshot that later training must not change.
        ``keep_vars=True`` returns the Parameter objects themselves.
        """
        return collect_state(
            self, OrderedDict() if destination is None else destination, prefix, keep_vars
        )

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters and buffers, in place (all-or-nothing).

        Values may be sparkgrad Tensors, NumPy arrays or torch tensors. Everything is
        checked before anything is copied: with ``strict=True`` missing or unexpected
        keys raise :class:`~sparkgrad.errors.CheckpointError`; a shape mismatch always
        raises :class:`~sparkgrad.errors.ShapeError`. Returns the missing and
        unexpected keys (both empty when everything matched).
        """
        return load_into(self.state_dict(keep_vars=True), state_dict, strict, self._get_name())

    # ---- printing --------------------------------------------------------------------
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """The text inside the parentheses, e.g. ``in_features=784, ...`` (override it)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [
            f"({key}): " + _addindent(repr(module), 2) for key, module in self._modules.items()
        ]
        lines = extra_lines + child_lines
        body = ""
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                body = extra_lines[0]
            else:
                body = "\n  " + "\n  ".join(lines) + "\n"
        return f"{self._get_name()}({body})"


def _check_name(module: Module, name: Any, store: str) -> None:
    if store not in module.__dict__:
        raise AttributeError(f"cannot assign {store[1:]} before Module.__init__() call")
    if not isinstance(name, str) or "." in name or name == "":
        raise KeyError(f'names must be strings without "." and not empty, found {name!r}')
    if name in module.__dict__:
        raise KeyError(f"attribute '{name}' already exists")


def _check_type(value: Any, cls: type, kind: str, name: str) -> None:
    if value is not None and not isinstance(value, cls):
        raise TypeError(
            f"cannot assign '{type(value).__name__}' as {kind} '{name}' "
            f"({cls.__name__} or None expected)"
        )


def _forget(module: Module, name: str, keep: str) -> None:
    """Remove ``name`` from the other stores before it is (re)registered in ``keep``.

    The store it goes into is left alone, so re-assigning ``self.weight`` keeps its place
    in ``parameters()`` order, as in PyTorch.
    """
    if "_parameters" not in module.__dict__:
        raise AttributeError("cannot assign parameters or modules before Module.__init__() call")
    module.__dict__.pop(name, None)
    for store in ("_parameters", "_buffers", "_modules"):
        if store != keep:
            module.__dict__[store].pop(name, None)
    module._non_persistent_buffers.discard(name)

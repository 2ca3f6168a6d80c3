"""Containers: ``Sequential`` (a pipeline), ``ModuleList`` and ``ModuleDict`` (collections).

Children are registered under their position (``"0"``, ``"1"``, ...) or their key, which is
where state-dict names such as ``0.weight`` come from: ``Sequential(Linear(784, 256),
ReLU(), Linear(256, 10))`` has ``0.weight, 0.bias, 2.weight, 2.bias``, the same keys as
the PyTorch model, so weights move between the two unchanged.

A plain Python list of layers would *not* register them (no parameters, no state dict);
that is what ``ModuleList`` is for.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sparkgrad.autodiff.nn.module import Module, _addindent

__all__ = ["Sequential", "ModuleList", "ModuleDict"]


def _index(container: Module, idx: Any) -> int:
    """A valid non-negative position for ``idx`` (negative counts from the end)."""
    idx = operator.index(idx)
    size = len(container)
    if not -size <= idx < size:
        raise IndexError(
            f"index {idx} is out of range for {type(container).__name__} of length {size}"
        )
    return idx % size


class Sequential(Module):
    """Runs its children one after the other: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Build it from modules (``Sequential(l1, l2)``) or from an ordered dict of named ones
    (``Sequential(OrderedDict(fc=l1, act=l2))``, whose keys become the state-dict names).
    """

    def __init__(self, *args: Any) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for key, module in args[0].items():
                self.add_module(key, module)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), module)

    def forward(self, input: Any) -> Any:  # noqa: A002 - PyTorch's name
        for module in self._modules.values():
            input = module(input)
        return input

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):  # a new Sequential sharing the same layers, keys kept
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[_index(self, idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        key = list(self._modules)[_index(self, idx)]
        self.add_module(key, module)

    def __delitem__(self, idx: int | slice) -> None:
        keys = list(self._modules)
        for key in keys[idx] if isinstance(idx, slice) else [keys[_index(self, idx)]]:
            del self._modules[key]
        # renumber so positions stay 0..n-1, as PyTorch does
        object.__setattr__(
            self, "_modules", OrderedDict((str(i), m) for i, m in enumerate(self._modules.values()))
        )

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end (key ``str(len(self))``)."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> Sequential:
        for module in modules:
            self.append(module)
        return self


class ModuleList(Module):
    """A list of modules that registers them (no ``forward``: you decide how to call them)."""

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return self._modules[str(_index(self, idx))]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(str(_index(self, idx)), module)

    def __delitem__(self, idx: int | slice) -> None:
        keep = list(self._modules.values())
        del keep[idx]
        object.__setattr__(self, "_modules", OrderedDict((str(i), m) for i, m in enumerate(keep)))

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        items = list(self._modules.values())
        items.insert(index, module)
        object.__setattr__(self, "_modules", OrderedDict())
        self.extend(items)

    def __repr__(self) -> str:
        """PyTorch's compact form: runs of identical children print once, e.g. ``(0-2): 3 x``."""
        reprs = [repr(m) for m in self]
        if not reprs:
            return self._get_name() + "()"
        runs: list[list[Any]] = []  # [start, end, repr]
        for i, text in enumerate(reprs):
            if runs and runs[-1][2] == text:
                runs[-1][1] = i
            else:
                runs.append([i, i, text])
        lines = []
        for start, end, text in runs:
            head = f"({start}): " if start == end else f"({start}-{end}): {end - start + 1} x "
            lines.append(_addindent(head + text, 2))
        return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"


class ModuleDict(Module):
    """A dict of modules that registers them under their keys (insertion order kept)."""

    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()

    def update(self, modules: Mapping[str, Module]) -> None:
        for key, module in dict(modules).items():
            self.add_module(key, module)

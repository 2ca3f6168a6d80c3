"""The committed exercise files are blanks: they import, define every name the tests use,
and each body raises ``NotImplementedError("exercise: ...")`` (nobody commits a solution).

Skipped under ``--learner``: then the files are meant to be filled in.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest

from exercises.reference import LEARNER_FILES, SOLUTIONS


def _blanks(module: Any, names: list[str]) -> list[tuple[str, Any]]:
    """``(label, callable)`` for every body the learner writes in ``module``."""
    out = []
    for name in names:
        obj = getattr(module, name)
        if name.endswith("_region"):  # f/g: the bodies are the Function classes' methods
            for cls in (module.CopyToTensorParallelRegion, module.ReduceFromTensorParallelRegion):
                out += [(f"{cls.__name__}.forward", cls.forward)]
                out += [(f"{cls.__name__}.backward", cls.backward)]
            continue
        out.append((name, obj))
    return out


@pytest.mark.parametrize("exercise", list(LEARNER_FILES))
def test_exercise_files_are_blanks(exercise: str, learner: bool) -> None:
    if learner:
        pytest.skip("--learner: the exercise files are yours to fill in")
    module = importlib.import_module(LEARNER_FILES[exercise])
    names = sorted(vars(SOLUTIONS[exercise]))
    missing = [n for n in names if not callable(getattr(module, n, None))]
    assert not missing, f"{LEARNER_FILES[exercise]} lacks {missing}"
    assert module.__doc__ and "pytest -m exercise_" in module.__doc__, "say how to check it"
    for label, fn in _blanks(module, names):
        args = [None] * len(
            [p for p in inspect.signature(fn).parameters.values() if p.default is p.empty]
        )
        with pytest.raises(NotImplementedError, match="^exercise: "):
            fn(*args)
        assert fn.__doc__ or label.endswith(("forward", "backward")), f"{label}: no docstring"

"""The exercise tests take the implementation under test from ``impl``.

By default ``impl`` is the reference solution (the project's own code, mapped in
``exercises/reference.py``), so CI checks the project with the very tests a learner's
version must pass. With ``--learner`` (or ``SPARKGRAD_EXERCISES=learner``) it is the
learner's module in ``exercises/``. Each test module names its exercise in ``EXERCISE``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # plain `pytest` (not `python -m pytest`) does not add it
    sys.path.insert(0, str(ROOT))

from exercises import reference  # noqa: E402


def learner_mode(config: pytest.Config) -> bool:
    """True when the learner's files are under test (``--learner`` or the env variable)."""
    env = os.environ.get("SPARKGRAD_EXERCISES", "").strip().lower()
    if env not in ("", "reference", "learner"):
        raise pytest.UsageError(
            f"SPARKGRAD_EXERCISES: expected 'learner' or 'reference', found {env!r}"
        )
    return bool(config.getoption("--learner")) or env == "learner"


def load(name: str, learner: bool) -> Any:
    """The functions of exercise ``name``: the learner's module or the reference's."""
    if learner:
        return importlib.import_module(reference.LEARNER_FILES[name])
    return reference.SOLUTIONS[name]


@pytest.fixture
def impl(request: pytest.FixtureRequest) -> Any:
    """The implementation under test of this module's ``EXERCISE``."""
    return load(request.module.EXERCISE, learner_mode(request.config))


@pytest.fixture
def learner(request: pytest.FixtureRequest) -> bool:
    """True when the learner's files are under test."""
    return learner_mode(request.config)

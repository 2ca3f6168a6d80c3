"""The one check every exercise file makes of its own checks: they catch wrong versions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def assert_caught(wrong: str, impl: Any, checks: Iterable[Callable], must_catch: set[str]) -> None:
    """Run every check on the deliberately wrong ``impl``; the ones in ``must_catch`` (names
    without ``check_``) must fail with an AssertionError, or the checks prove nothing."""
    caught = set()
    for check in checks:
        try:
            check(impl)
        except AssertionError:
            caught.add(check.__name__.removeprefix("check_"))
    assert must_catch <= caught, f"wrong version '{wrong}': caught only by {sorted(caught)}"

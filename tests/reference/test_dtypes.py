"""Dtypes: torch's names for them and the default dtype.

Checked against torch itself: every alias (``sg.float``, ``sg.long`` ...) is the dtype
torch's name means, ``t.dtype == sg.float32`` style comparisons work, and
``set_default_dtype`` changes exactly the results torch's does (factories, ``tensor`` of
Python floats, new layers, integer-to-float promotion), with torch's errors.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import sparkgrad as sg

ALIASES = [
    "float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "bool",
    "float", "double", "half", "long", "int", "short",
]  # fmt: skip


def _torch_name(dtype: torch.dtype) -> str:
    return str(dtype).split(".")[1]


@pytest.fixture
def default_dtype_float64():
    """Default float64 in both engines for one test, restored afterwards (even on failure)."""
    sg.set_default_dtype(sg.float64)
    torch.set_default_dtype(torch.float64)
    yield
    sg.set_default_dtype(sg.float32)
    torch.set_default_dtype(torch.float32)


# ---- dtype aliases ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ALIASES)
def test_alias_is_the_dtype_torch_means(name):
    """sg.float is float32, sg.int int32, sg.long int64 ... exactly as torch's names."""
    alias = getattr(sg, name)
    assert np.dtype(alias).name == _torch_name(getattr(torch, name))
    t = sg.zeros(2, dtype=alias)
    assert t.dtype == alias and t.dtype == np.dtype(_torch_name(getattr(torch, name)))


def test_dtype_comparisons_and_conversions():
    """The everyday spellings: t.dtype == sg.float, zeros(dtype=sg.long), t.to(sg.double)."""
    t = sg.ones(3)
    assert t.dtype == sg.float32 and t.dtype == sg.float and t.dtype != sg.double
    assert sg.zeros(2, dtype=sg.long).dtype == sg.int64
    assert t.to(sg.double).dtype == sg.float64 and t.to(sg.half).dtype == sg.half
    assert sg.arange(3).dtype == sg.long and (t > 0).dtype == sg.bool
    assert sg.get_default_dtype() is sg.float32


def test_bfloat16_exists_exactly_when_ml_dtypes_is_installed():
    assert hasattr(sg, "bfloat16") == (importlib.util.find_spec("ml_dtypes") is not None)


def test_builtin_names_are_dtypes_at_top_level_only():
    """sg.float/int/bool are dtypes; Python's builtins are untouched elsewhere."""
    assert sg.float is np.float32 and sg.int is np.int32 and sg.bool is np.bool_
    assert float("1.5") == 1.5 and int("3") == 3 and bool(0) is False


@pytest.mark.parametrize("name", ALIASES)
def test_is_floating_point_matches_torch(name):
    t = sg.zeros(2, dtype=getattr(sg, name))
    assert sg.is_floating_point(t) == torch.is_floating_point(
        torch.zeros(2, dtype=getattr(torch, name))
    )


# ---- the default dtype -------------------------------------------------------------------
RESULTS = {  # what the default dtype decides, in both engines
    "zeros": lambda m: m.zeros(2),
    "ones": lambda m: m.ones(2),
    "empty": lambda m: m.empty(2),
    "full float": lambda m: m.full((2,), 1.5),
    "tensor([1.5])": lambda m: m.tensor([1.5]),
    "tensor(2.5)": lambda m: m.tensor(2.5),
    "rand": lambda m: m.rand(2),
    "randn": lambda m: m.randn(2),
    "eye": lambda m: m.eye(2),
    "linspace": lambda m: m.linspace(0, 1, 5),
    "logspace": lambda m: m.logspace(0, 1, 5),
    "arange(0.5)": lambda m: m.arange(0.5, 3),
    "arange(3)": lambda m: m.arange(3),
    "int * 0.5": lambda m: m.tensor([1, 2]) * 0.5,
    "int / int": lambda m: m.tensor([1, 2]) / m.tensor([2, 2]),
    "exp(int)": lambda m: m.exp(m.tensor([1, 2])),
    "sin(int)": lambda m: m.sin(m.tensor([1, 2])),
    "Linear weight": lambda m: m.nn.Linear(2, 3).weight,
    "tensor(np.float32)": lambda m: m.tensor(np.ones(2, dtype=np.float32)),
}


@pytest.mark.parametrize("name", RESULTS)
def test_default_float64_changes_what_torch_changes(name, default_dtype_float64):
    """With float64 as the default, each result has torch's dtype (float64 or unchanged)."""
    got, want = RESULTS[name](sg), RESULTS[name](torch)
    assert got.dtype == np.dtype(_torch_name(want.dtype)), name
    assert sg.get_default_dtype() is sg.float64


@pytest.mark.parametrize("name", RESULTS)
def test_default_float32_results(name):
    got, want = RESULTS[name](sg), RESULTS[name](torch)
    assert got.dtype == np.dtype(_torch_name(want.dtype)), name


def test_set_default_dtype_round_trip_and_errors():
    """float16 is allowed (as torch 2.x), integers are torch's TypeError; restored after."""
    try:
        sg.set_default_dtype(sg.half)
        assert sg.zeros(1).dtype == np.float16 and sg.get_default_dtype() is np.float16
        sg.set_default_dtype(np.dtype("float64"))
        assert sg.tensor([1.0]).dtype == np.float64
    finally:
        sg.set_default_dtype(sg.float32)
    assert sg.zeros(1).dtype == np.float32
    for bad in (sg.int64, sg.bool, sg.uint8):
        with pytest.raises(TypeError, match="only floating-point types"):
            sg.set_default_dtype(bad)
        with pytest.raises(TypeError, match="only floating-point types"):
            torch.set_default_dtype(getattr(torch, np.dtype(bad).name))
    with pytest.raises(TypeError, match="expected a dtype"):
        sg.set_default_dtype("float64")
    assert sg.get_default_dtype() is sg.float32

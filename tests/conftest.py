"""Shared fixtures for every test: the device to run on and the comparison with PyTorch.

- ``device``: each test that asks for it runs once on ``"cpu"`` and once on ``"cuda"``;
  the cuda case is skipped (with the reason) where CuPy or a GPU is missing, and carries
  the ``cuda`` marker so ``pytest -m cuda`` selects exactly the GPU runs.
- ``assert_close``: a sparkgrad tensor (on any device) against a torch tensor or array.
- ``check_op``: run one op in sparkgrad and in PyTorch on the same float32 inputs, then
  compare the outputs AND the gradients of a random upstream gradient.
- ``check_grad``: the same op in float64 against central finite differences.

The fixtures are session-scoped so that hypothesis' ``@given`` tests may use them.
"""

from __future__ import annotations

import os

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # loopback only, for every Spark test

# SPARKGRAD_FAKE_CUDA=1: `import cupy` finds the strict CPU stand-in (tests/fake_cupy), here
# and in every process the tests spawn (ranks, Spark workers: through PYTHONPATH), so the
# cuda-marked tests run without a GPU. Never active unless asked (see tests/fake_cupy).
if os.environ.get("SPARKGRAD_FAKE_CUDA") == "1":
    import sys

    _FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fake_cupy")
    if _FAKE not in sys.path:
        sys.path.insert(0, _FAKE)
    _paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if _FAKE not in _paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([_FAKE, *filter(None, _paths)])
# Tests run many small matrices, often several processes at once (ranks, Spark workers) on
# 2 cores: one BLAS/OpenMP thread each avoids oversubscription (10-40x slowdowns seen).
# Benchmarks set their own thread counts; no test measures time.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from collections.abc import Callable, Sequence  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import sparkgrad.autodiff as ad  # noqa: E402

try:  # numpy may be imported already (by a plugin): limit its BLAS pool in place as well
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
except ImportError:  # pragma: no cover - threadpoolctl comes with the test extras
    pass

_NEEDS_CUDA = pytest.mark.skipif(
    not ad.cuda_is_available(), reason="no CUDA GPU/CuPy on this machine"
)


@pytest.fixture(
    scope="session",
    params=["cpu", pytest.param("cuda", marks=[_NEEDS_CUDA, pytest.mark.cuda])],
)
def device(request: pytest.FixtureRequest) -> str:
    """``"cpu"``, then ``"cuda"`` (skipped without a GPU)."""
    return request.param


def _to_numpy(x: Any) -> np.ndarray:
    """Values of a sparkgrad tensor, a torch tensor or an array, as a NumPy array on the CPU."""
    if isinstance(x, ad.Tensor):
        return x.detach().to("cpu").numpy()
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor
        return x.detach().cpu().numpy()
    return np.asarray(x)


def assert_close_fn(
    actual: Any,
    expected: Any,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    what: str = "",
    check_dtype: bool = True,
) -> None:
    """Same shape, same dtype (unless told otherwise), values within ``atol + rtol·|expected|``."""
    a, e = _to_numpy(actual), _to_numpy(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    if check_dtype:
        assert a.dtype == e.dtype, f"{what}: dtype {a.dtype} != expected {e.dtype}"
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=what)


def check_op_fn(
    sg_fn: Callable[..., Any],
    torch_fn: Callable[..., Any],
    arrays: Sequence[np.ndarray],
    device: str = "cpu",
    rtol: float = 1e-5,
    atol: float = 1e-6,
    grad_rtol: float | None = None,
    grad_atol: float | None = None,
    seed: int = 0,
) -> tuple[Any, Any]:
    """Forward and backward of ``sg_fn`` vs ``torch_fn`` on the same inputs.

    Floating arrays become leaves that require grad on both sides; integer and boolean
    arrays (targets, indices, masks) are passed as plain tensors. Backward uses the same
    random upstream gradient on both sides, so every element of every input's gradient is
    checked, not just the gradient of a sum.
    """
    import torch

    sg_in = [ad.tensor(a, device=device, requires_grad=a.dtype.kind == "f") for a in arrays]
    t_in = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out, t_out = sg_fn(*sg_in), torch_fn(*t_in)
    assert_close_fn(out, t_out, rtol, atol, "forward")
    if not t_out.requires_grad:
        return out, t_out
    upstream = np.random.default_rng(seed).standard_normal(t_out.shape).astype(np.float32)
    out.backward(ad.tensor(upstream, device=device))
    t_out.backward(torch.tensor(upstream))
    for i, (s, t) in enumerate(zip(sg_in, t_in)):
        if not t.requires_grad:
            continue
        assert s.grad is not None, f"input {i} got no gradient"
        expected = t.grad if t.grad is not None else torch.zeros_like(t)
        g_rtol = rtol if grad_rtol is None else grad_rtol
        g_atol = atol if grad_atol is None else grad_atol
        assert_close_fn(s.grad, expected, g_rtol, g_atol, f"gradient of input {i}")
    return out, t_out


def check_grad_fn(
    fn: Callable[..., Any], arrays: Sequence[np.ndarray], device: str = "cpu", **kwargs: Any
) -> None:
    """``sparkgrad.autodiff.gradcheck`` of ``fn`` in float64 (float inputs require grad)."""
    inputs = [
        ad.tensor(a, dtype=np.float64, device=device, requires_grad=True)
        if a.dtype.kind == "f"
        else ad.tensor(a, device=device)
        for a in arrays
    ]
    assert ad.gradcheck(fn, inputs, **kwargs)


@pytest.fixture(scope="session")
def assert_close() -> Callable[..., None]:
    """``assert_close(sg_tensor, torch_tensor, rtol=1e-5, atol=1e-6, what="")``."""
    return assert_close_fn


@pytest.fixture(scope="session")
def check_op() -> Callable[..., tuple[Any, Any]]:
    """``check_op(sg_fn, torch_fn, [arrays], device)``: forward + backward vs PyTorch."""
    return check_op_fn


@pytest.fixture(scope="session")
def check_grad() -> Callable[..., None]:
    """``check_grad(fn, [arrays], device)``: float64 gradcheck against finite differences."""
    return check_grad_fn


# ---- the build-it-yourself exercises (tests/exercises/) ----------------------------------
# Registered here, in the conftest pytest reads first, so that `pytest -m exercise_ring
# --learner` works from the repository root without naming a path.
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--learner",
        action="store_true",
        default=False,
        help="check the learner's files in exercises/ instead of the project's reference code "
        "(the same as SPARKGRAD_EXERCISES=learner)",
    )

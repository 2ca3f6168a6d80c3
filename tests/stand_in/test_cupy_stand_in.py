"""The CuPy stand-in (tests/fake_cupy) is as strict as CuPy where CuPy differs from NumPy.

Were it laxer, the cuda-marked suite could pass on the CPU and fail on the first GPU: so
each refusal CuPy makes is checked here, with its exception type, and each host↔device
crossing with its ledger entry. (CuPy's own behaviour, from its source: ``__array__``
raises TypeError, kernels refuse NumPy arrays as "Unsupported type", reductions return 0-d
arrays, a NumPy index array is copied to the device, ``ndarray`` has no ``__index__``.)
"""

import importlib.util
import os

import numpy as np
import pytest

ACTIVE = os.environ.get("SPARKGRAD_FAKE_CUDA") == "1"
stand_in = pytest.mark.skipif(
    not ACTIVE, reason="the CuPy stand-in runs with SPARKGRAD_FAKE_CUDA=1"
)


@pytest.fixture
def cp():
    import cupy

    assert cupy.IS_SPARKGRAD_FAKE
    cupy.fake.reset()
    return cupy


def _kinds(cp):
    return [(e.kind, e.what) for e in cp.fake.events]


@pytest.mark.skipif(ACTIVE, reason="checks the ordinary run, where the stand-in is off")
def test_never_active_unless_asked():
    spec = importlib.util.find_spec("cupy")
    assert spec is None or "fake_cupy" not in (spec.origin or "")


@pytest.mark.cuda
@stand_in
def test_no_implicit_conversion_to_numpy(cp):
    x = cp.arange(6, dtype=np.float32).reshape(2, 3)
    for convert in (np.asarray, np.array, np.ascontiguousarray):
        with pytest.raises(TypeError, match="Implicit conversion to a NumPy array"):
            convert(x)
    with pytest.raises(TypeError, match="only length-1 arrays"):
        float(x)
    with pytest.raises(TypeError):
        range(cp.asarray(3))  # no __index__, as in CuPy
    assert _kinds(cp) == [("to_device", "array(int)")]


@pytest.mark.cuda
@stand_in
def test_numpy_arrays_are_refused_in_ops(cp):
    x, host = cp.ones(3, np.float32), np.ones(3, np.float32)
    for op in (lambda: x + host, lambda: host + x, lambda: x * host, lambda: cp.maximum(x, host),
               lambda: np.concatenate([x, host]), lambda: cp.where(x > 0, x, host)):  # fmt: skip
        with pytest.raises(TypeError, match="Unsupported type"):
            op()
    with pytest.raises(TypeError):
        x[...] = host  # CuPy refuses assignment from CPU arrays
    with pytest.raises(TypeError):
        cp.ascontiguousarray(host)


@pytest.mark.cuda
@stand_in
def test_results_stay_on_the_device(cp):
    x = cp.arange(4, dtype=np.float64)
    for result in (x.sum(), x[2], np.exp(x), np.sum(x), x.max(axis=0), x.mean()):
        assert isinstance(result, cp.ndarray)
    assert cp.get_array_module(x) is cp and cp.get_array_module(np.ones(1)) is np
    assert _kinds(cp) == []


@pytest.mark.cuda
@stand_in
def test_every_crossing_is_counted(cp):
    host = np.arange(3.0)
    x = cp.asarray(host)
    assert cp.asarray(x) is x
    x.get(), cp.asnumpy(x), x.tolist(), x[0].item(), float(x[1]), bool(x[2] > 1)
    x[np.array([0, 2])]
    x[x > 0]
    assert _kinds(cp) == [
        ("to_device", "array(ndarray)"), ("to_host", "get()"), ("to_host", "get()"),
        ("to_host", "tolist()"), ("to_host", "item()"), ("to_host", "float()"),
        ("to_host", "bool()"), ("to_device", "host index array int64(2,)"),
        ("sync", "boolean mask index (result size)"),
    ]  # fmt: skip
    assert cp.fake.counts() == {"to_device": 2, "to_host": 6, "sync": 1}


@pytest.mark.cuda
@stand_in
def test_synchronisations_are_counted(cp):
    cp.cuda.Device().synchronize()
    cp.cuda.Stream.null.synchronize()
    cp.cuda.runtime.deviceSynchronize()
    cp.nonzero(cp.ones(2))
    assert [k for k, _ in _kinds(cp)] == ["sync"] * 4
    assert cp.cuda.runtime.getDeviceCount() == 1
    with pytest.raises(cp.cuda.runtime.CUDARuntimeError):
        cp.cuda.Device(1).use()


@pytest.mark.cuda
@stand_in
def test_kernels_run_their_numpy_equivalent_or_refuse(cp):
    axpy = cp.ElementwiseKernel("T alpha, T x", "T y", "y = fma(alpha, x, y)", "sparkgrad_axpy")
    x, y = cp.full(5, 0.1, np.float32), cp.full(5, 1.0, np.float32)
    axpy(np.float32(3.0), x, y)
    exact = (np.float64(np.float32(0.1)) * 3.0 + 1.0).astype(np.float32)  # rounded once
    assert (y.get() == exact).all()
    with pytest.raises(NotImplementedError, match="cannot compile CUDA C"):
        cp.RawKernel("extern C __global__ void k() {}", "k")()

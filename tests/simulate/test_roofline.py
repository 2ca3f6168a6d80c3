"""The roofline of a matmul on a modelled device, checked against hand arithmetic."""

import pytest

from sparkgrad.errors import ConfigError
from sparkgrad.simulate.devices import DEVICES, cpu_device, get_device
from sparkgrad.simulate.roofline import matmul_cost, op_cost, ridge_point

H100 = DEVICES["h100"]


def test_square_bf16_matmul_on_h100_is_compute_bound():
    # 2 * 4096^3 FLOPs at 989.5e12 * 0.8; 3 * 4096^2 * 2 bytes at 3.35e12 * 0.85
    cost = matmul_cost(4096, 4096, 4096, H100, "bf16")
    compute = 2 * 4096**3 / (989.5e12 * 0.8)
    memory = 3 * 4096**2 * 2 / (3.35e12 * 0.85)
    assert cost.bound == "compute"
    assert cost.compute_seconds == pytest.approx(compute, rel=1e-12)
    assert cost.memory_seconds == pytest.approx(memory, rel=1e-12)
    assert cost.seconds == pytest.approx(compute + 4e-6, rel=1e-12)


def test_matrix_vector_product_is_memory_bound():
    cost = matmul_cost(8192, 8192, 1, H100, "bf16")
    nbytes = 2 * (8192 * 8192 + 8192 + 8192)
    assert cost.bound == "memory"
    assert cost.seconds == pytest.approx(nbytes / (3.35e12 * 0.85) + 4e-6, rel=1e-12)


def test_ridge_point_and_dtype_peaks():
    assert ridge_point(H100, "bf16") == pytest.approx(989.5 * 0.8 / (3.35 * 0.85))
    # fp32 runs on the vector units: 67 TFLOP/s, so the same matmul is ~14.8x slower
    fp32 = matmul_cost(4096, 4096, 4096, H100, "fp32").compute_seconds
    bf16 = matmul_cost(4096, 4096, 4096, H100, "bf16").compute_seconds
    assert fp32 / bf16 == pytest.approx(989.5 / 67)
    # the A100's bf16 peak is 312 TFLOP/s, the H200 has the H100's compute, more bandwidth
    assert DEVICES["a100"].peak("bf16") == 312e12
    assert DEVICES["h200"].peak("bf16") == H100.peak("bf16")
    assert DEVICES["h200"].memory_bandwidth > H100.memory_bandwidth


def test_elementwise_ops_use_the_vector_peak():
    cost = op_cost(1e9, 0.0, H100, "bf16", kind="elementwise")
    assert cost.compute_seconds == pytest.approx(1e9 / (67e12 * 0.8))


def test_cpu_is_measured_here():
    cpu = cpu_device()
    assert cpu.peak("fp32") > 1e8 and cpu.memory_bandwidth > 1e8
    assert cpu.peak("bf16") == cpu.peak("fp32")  # no tensor cores
    assert get_device("cpu") is cpu


def test_unknown_names_raise():
    with pytest.raises(ConfigError, match="unknown device"):
        get_device("tpu")
    with pytest.raises(ConfigError, match="unknown dtype"):
        H100.peak("int8")

"""Weight initialisation: the right distributions, from the seeded generator.

sparkgrad and PyTorch use different random generators, so their numbers differ; what must
agree is the *distribution*. Each statistical check uses about a million samples and a
tolerance many standard errors wide, yet far narrower than the gap to any plausible wrong
formula (e.g. a bound of 1/sqrt(fan_out) instead of 1/sqrt(fan_in), or sqrt(6/fan_in)
instead of 1/sqrt(fan_in)). The seeds are fixed, so the tests are deterministic anyway.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad import nn
from sparkgrad.errors import ConfigError, ShapeError

IN, OUT = 400, 2500  # fan_in != fan_out, so swapping them would be caught


def values(t) -> np.ndarray:
    return t.detach().numpy().astype(np.float64).ravel()


def assert_uniform(x: np.ndarray, bound: float) -> None:
    """Samples of U(-bound, bound): inside the bound, reaching it, right mean and variance."""
    n = x.size
    assert np.abs(x).max() <= bound * (1 + 1e-6)
    # P(max|x| < 0.999·bound) = 0.999**n ≈ e^-1000 for n = 1e6: cannot happen by chance
    assert np.abs(x).max() >= bound * 0.999
    var = bound**2 / 3
    assert abs(x.mean()) < 5 * math.sqrt(var / n)
    assert abs(x.var() / var - 1) < 0.01  # relative standard error ≈ 0.0009


def assert_normal(x: np.ndarray, mean: float, std: float) -> None:
    n = x.size
    assert abs(x.mean() - mean) < 5 * std / math.sqrt(n)
    assert abs(x.std() / std - 1) < 0.01  # relative standard error ≈ 0.0007
    # a normal, not a uniform of the same variance: about 4.55% of samples beyond 2 std
    assert abs((np.abs(x - mean) > 2 * std).mean() - 0.0455) < 0.002


def test_linear_default_init_is_torchs_distribution():
    """Weight and bias both U(-1/sqrt(in), 1/sqrt(in)); PyTorch's own layer agrees."""
    sg.manual_seed(0)
    layer = nn.Linear(IN, OUT)
    bound = 1 / math.sqrt(IN)
    assert_uniform(values(layer.weight), bound)
    bias = values(layer.bias)
    assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0.99 * bound  # 2,500 samples
    torch.manual_seed(0)
    ref = torch.nn.Linear(IN, OUT)  # the independent truth, measured the same way
    assert_uniform(ref.weight.detach().numpy().astype(np.float64).ravel(), bound)


def test_embedding_init_is_standard_normal():
    sg.manual_seed(0)
    assert_normal(values(nn.Embedding(1000, 1000).weight), 0.0, 1.0)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_kaiming_uniform_and_normal(mode):
    """He init for ReLU: bound sqrt(6/fan), std sqrt(2/fan)."""
    sg.manual_seed(0)
    fan = IN if mode == "fan_in" else OUT
    w = sg.empty(OUT, IN)
    nn.init.kaiming_uniform_(w, mode=mode, nonlinearity="relu")
    assert_uniform(values(w), math.sqrt(6 / fan))
    nn.init.kaiming_normal_(w, mode=mode, nonlinearity="relu")
    assert_normal(values(w), 0.0, math.sqrt(2 / fan))


def test_xavier_uniform_and_normal():
    """Glorot: bound gain·sqrt(6/(in+out)), std gain·sqrt(2/(in+out))."""
    sg.manual_seed(0)
    w = sg.empty(OUT, IN)
    gain = nn.init.calculate_gain("tanh")
    nn.init.xavier_uniform_(w, gain=gain)
    assert_uniform(values(w), gain * math.sqrt(6 / (IN + OUT)))
    nn.init.xavier_normal_(w)
    assert_normal(values(w), 0.0, math.sqrt(2 / (IN + OUT)))


def test_uniform_normal_constant_and_trunc_normal():
    sg.manual_seed(0)
    w = sg.empty(1000, 1000)
    assert_uniform(values(nn.init.uniform_(w, -0.3, 0.3)), 0.3)
    assert_normal(values(nn.init.normal_(w, 1.0, 0.5)), 1.0, 0.5)
    t = values(nn.init.trunc_normal_(w, std=1.0, a=-1.0, b=1.0))
    assert t.min() >= -1.0 and t.max() <= 1.0 and t.max() > 0.999
    # N(0,1) truncated to [-1, 1] has variance 1 - 2·φ(1)/(Φ(1)-Φ(-1)) ≈ 0.29112
    assert abs(t.var() / 0.29112 - 1) < 0.01
    assert np.all(values(nn.init.constant_(w, 0.25)) == 0.25)
    assert np.all(values(nn.init.ones_(w)) == 1) and np.all(values(nn.init.zeros_(w)) == 0)


def test_init_writes_in_place_and_records_no_graph():
    """The tensor keeps its array object (views see the change) and stays a leaf."""
    p = nn.Parameter(sg.zeros(50, 40))
    array, view = p.array, p.array[0]
    nn.init.normal_(p)
    assert p.array is array and view.any() and p.is_leaf and p.grad is None


@pytest.mark.parametrize("shape", [(5, 3), (8, 4, 3, 3), (2, 6, 5)])
def test_fan_in_fan_out_equal_torch(shape):
    ours = nn.init._calculate_fan_in_and_fan_out(sg.empty(*shape))
    theirs = torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
    assert ours == theirs


@pytest.mark.parametrize(
    "nonlinearity,param",
    [
        ("linear", None),
        ("sigmoid", None),
        ("tanh", None),
        ("relu", None),
        ("leaky_relu", None),
        ("leaky_relu", 0.2),
        ("leaky_relu", math.sqrt(5)),
        ("selu", None),
        ("conv2d", None),
    ],  # fmt: skip
)
def test_calculate_gain_equals_torch(nonlinearity, param):
    assert nn.init.calculate_gain(nonlinearity, param) == pytest.approx(
        torch.nn.init.calculate_gain(nonlinearity, param), rel=1e-12
    )


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ShapeError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(sg.empty(5))
    with pytest.raises(ConfigError, match="nonlinearity"):
        nn.init.calculate_gain("swish")
    with pytest.raises(ConfigError, match="mode"):
        nn.init.kaiming_uniform_(sg.empty(2, 2), mode="fan_avg")


def test_same_seed_same_model_different_seed_different_model():
    """manual_seed(s) then building a model gives the same weights, every time."""

    def build(seed):
        sg.manual_seed(seed)
        model = nn.Sequential(nn.Linear(20, 10), nn.GELU(), nn.LayerNorm(10), nn.Embedding(4, 10))
        return {k: v.numpy().copy() for k, v in model.state_dict().items()}

    first, again, other = build(3), build(3), build(4)
    for k in first:
        np.testing.assert_array_equal(first[k], again[k])
    assert not np.array_equal(first["0.weight"], other["0.weight"])


def test_float64_layers_get_float64_draws():
    sg.manual_seed(0)
    layer = nn.Linear(3, 2, dtype=np.float64)
    assert layer.weight.dtype == np.float64 and layer.bias.dtype == np.float64

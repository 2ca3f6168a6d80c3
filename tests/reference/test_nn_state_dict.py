"""``state_dict`` / ``load_state_dict``: weights travel between sparkgrad and PyTorch.

Checked: a state dict is detached and shares memory (as PyTorch's); it loads from
sparkgrad tensors, NumPy arrays and torch tensors; a PyTorch model loaded with sparkgrad
weights computes the same function (and vice versa); and every kind of mismatch raises a
clear error naming the offending keys or shapes, *without* changing the model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad import nn
from sparkgrad.errors import CheckpointError, ShapeError


def small_mlp(lib):
    return lib.Sequential(lib.Linear(6, 5), lib.ReLU(), lib.Linear(5, 3))


def snapshot(model) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_state_dict_is_detached_and_shares_memory():
    model = small_mlp(nn)
    state = model.state_dict()
    assert all(not v.requires_grad and not isinstance(v, nn.Parameter) for v in state.values())
    with sg.no_grad():
        model[0].weight.add_(1.0)
    np.testing.assert_array_equal(state["0.weight"].numpy(), model[0].weight.detach().numpy())
    assert model.state_dict(keep_vars=True)["0.weight"] is model[0].weight


def test_torch_weights_give_torch_outputs():
    """Load a PyTorch model's state dict (torch tensors) and compute the same outputs."""
    torch.manual_seed(0)
    ref = small_mlp(torch.nn)
    model = small_mlp(nn)
    result = model.load_state_dict(ref.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == "<All keys matched successfully>"
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_allclose(
        model(sg.tensor(x)).detach().numpy(),
        ref(torch.from_numpy(x)).detach().numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "convert", [lambda v: v, lambda v: v.numpy(), lambda v: torch.from_numpy(v.numpy())]
)
def test_round_trip_from_any_tensor_kind(convert):
    """Values may be sparkgrad Tensors, NumPy arrays or torch tensors; the copy is a copy."""
    sg.manual_seed(0)
    source = small_mlp(nn)
    sg.manual_seed(1)
    target = small_mlp(nn)
    target.load_state_dict({k: convert(v) for k, v in source.state_dict().items()})
    for k, v in snapshot(source).items():
        np.testing.assert_array_equal(target.state_dict()[k].numpy(), v)
    assert target[0].weight.array is not source[0].weight.array


def test_missing_and_unexpected_keys_are_named():
    """strict=True: the error lists every missing and every unexpected key; nothing changes."""
    model = small_mlp(nn)
    before = snapshot(model)
    state = dict(model.state_dict())
    del state["2.bias"]
    state["3.weight"] = sg.zeros(3, 5)
    with pytest.raises(CheckpointError) as info:
        model.load_state_dict({k: v.numpy() + 1 for k, v in state.items()})
    assert "'2.bias'" in str(info.value) and "'3.weight'" in str(info.value)
    for k, v in snapshot(model).items():
        np.testing.assert_array_equal(v, before[k])


def test_strict_false_loads_common_keys_and_reports_the_rest():
    model = small_mlp(nn)
    new_weight = np.full((5, 6), 0.5, np.float32)
    result = model.load_state_dict({"0.weight": new_weight, "extra": np.zeros(1)}, strict=False)
    assert result.missing_keys == ["0.bias", "2.weight", "2.bias"]
    assert result.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(model[0].weight.detach().numpy(), new_weight)


def test_shape_mismatch_names_key_and_both_shapes_and_changes_nothing():
    model = small_mlp(nn)
    before = snapshot(model)
    state = {k: v.numpy() + 1 for k, v in model.state_dict().items()}
    state["2.weight"] = np.zeros((5, 3), np.float32)  # transposed by mistake
    with pytest.raises(ShapeError, match=r"2\.weight.*\(5, 3\).*\(3, 5\)"):
        model.load_state_dict(state)
    for k, v in snapshot(model).items():
        np.testing.assert_array_equal(v, before[k])
    with pytest.raises(ShapeError):
        model.load_state_dict({"0.weight": np.zeros((6, 5))}, strict=False)


def test_bad_values_are_rejected_clearly():
    model = small_mlp(nn)
    state = dict(model.state_dict())
    state["0.bias"] = "zeros"
    with pytest.raises(CheckpointError, match="0.bias.*str"):
        model.load_state_dict(state)
    with pytest.raises(CheckpointError, match="mapping"):
        model.load_state_dict([1, 2])


def test_load_casts_to_the_parameter_dtype():
    model = small_mlp(nn)
    state = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert all(p.dtype == np.float32 for p in model.parameters())

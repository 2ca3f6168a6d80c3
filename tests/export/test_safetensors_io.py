"""Exported files are real safetensors that PyTorch loads, and damaged files are refused.

The independent truth is PyTorch itself: ``safetensors.torch.load_file`` reads our file and
``torch.nn.Module.load_state_dict`` accepts it, and the loaded model predicts exactly what
the model whose weights we exported predicts.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sparkgrad.errors import CheckpointError
from sparkgrad.export import load_safetensors, save_safetensors


def _torch_mlp(seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(784, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))


def _state(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def test_pytorch_loads_the_file_and_predicts_the_same(tmp_path):
    """Weights exported from one model and loaded by PyTorch into a fresh one give equal logits."""
    source = _torch_mlp(seed=1)
    path = save_safetensors(_state(source), tmp_path / "model.safetensors", {"epochs": 3})
    fresh = _torch_mlp(seed=2)
    fresh.load_state_dict(load_file(path))
    x = torch.rand(16, 784)
    assert torch.equal(fresh(x), source(x))


def test_round_trip_keeps_names_dtypes_shapes_and_metadata(tmp_path):
    state = {"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "steps": np.array([7])}
    path = save_safetensors(state, tmp_path / "m.safetensors", {"strategy": "data", "acc": 0.9})
    arrays, meta = load_safetensors(path)
    assert set(arrays) == set(state)
    for k in state:
        assert arrays[k].dtype == state[k].dtype and np.array_equal(arrays[k], state[k])
    assert meta["strategy"] == "data" and float(meta["acc"]) == 0.9


def test_truncated_file_is_refused(tmp_path):
    path = save_safetensors(_state(_torch_mlp(0)), tmp_path / "m.safetensors")
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_safetensors(path)


def test_flipped_tensor_byte_is_refused(tmp_path):
    """safetensors itself cannot see a changed weight; the stored SHA-256 does."""
    path = save_safetensors(_state(_torch_mlp(0)), tmp_path / "m.safetensors")
    with open(path, "r+b") as f:
        f.seek(-5, os.SEEK_END)
        byte = f.read(1)
        f.seek(-5, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CheckpointError, match="altered"):
        load_safetensors(path)


def test_garbage_header_and_missing_file_are_refused(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 8 + b"{not json")
    with pytest.raises(CheckpointError):
        load_safetensors(bad)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_safetensors(tmp_path / "absent.safetensors")


def test_failed_save_leaves_the_previous_file_and_no_temporary(tmp_path):
    """Writing goes to a temporary name first: a failure leaves the old export intact."""
    path = tmp_path / "m.safetensors"
    save_safetensors({"w": np.ones(3, np.float32)}, path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="cannot export"):
        save_safetensors({"w": np.ones(3, np.float32)[::2].astype(object)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]

"""Checkpoints: stop after 5 steps, resume in fresh objects, and land on the very same bits.

The truth is an uninterrupted run. The model has dropout, so the resumed run only matches
if the checkpoint restored the random generator as well as weights and optimizer buffers.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import sparkgrad as sg
from sparkgrad.autodiff import functional as F
from sparkgrad.autodiff.random import get_rng_state, set_rng_state
from sparkgrad.engine.checkpoint import (
    list_checkpoints,
    load_latest_checkpoint,
    save_checkpoint,
)
from sparkgrad.errors import CheckpointError

RNG = np.random.default_rng(0)
X = RNG.standard_normal((10, 8, 6)).astype(np.float32)  # 10 batches of 8 samples
Y = RNG.integers(0, 3, (10, 8))


def make_model(seed: int) -> sg.nn.Module:
    sg.manual_seed(seed)
    return sg.nn.Sequential(
        sg.nn.Linear(6, 16), sg.nn.ReLU(), sg.nn.Dropout(0.3), sg.nn.Linear(16, 3)
    )


def make_optimizer(name: str, model: sg.nn.Module) -> sg.optim.Optimizer:
    if name == "sgd":
        return sg.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    return sg.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.95))


def train(model: sg.nn.Module, opt: sg.optim.Optimizer, batches: range) -> None:
    for i in batches:
        loss = F.cross_entropy(model(sg.tensor(X[i])), sg.tensor(Y[i]))
        opt.zero_grad()
        loss.backward()
        opt.step()


def weights(model: sg.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.array.copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_resuming_from_a_checkpoint_gives_the_uninterrupted_run_bit_for_bit(tmp_path, opt_name):
    model = make_model(seed=0)
    opt = make_optimizer(opt_name, model)
    train(model, opt, range(0, 5))
    save_checkpoint(tmp_path, 5, model.state_dict(), opt.state_dict(), {"epoch": 0})
    train(model, opt, range(5, 10))
    expected = weights(model)

    sg.manual_seed(123)  # the resumed process starts with another generator state...
    fresh = make_model(seed=99)  # ...and other weights
    fresh_opt = make_optimizer(opt_name, fresh)
    ckpt = load_latest_checkpoint(tmp_path)
    assert ckpt is not None and ckpt.step == 5
    for index, buffers in opt.state_dict()["state"].items():  # same names, same shapes
        for name, buf in buffers.items():  # (Adam's step stays a 0-d array)
            assert ckpt.optimizer_state["state"][index][name].shape == buf.array.shape, name
    fresh.load_state_dict(ckpt.model_state)
    fresh_opt.load_state_dict(ckpt.optimizer_state)
    set_rng_state(ckpt.meta["rng"])
    train(fresh, fresh_opt, range(5, 10))

    for key, value in expected.items():
        np.testing.assert_array_equal(weights(fresh)[key], value, err_msg=key)
    for p, q in zip(model.parameters(), fresh.parameters()):
        for name, buf in opt.state[p].items():
            np.testing.assert_array_equal(fresh_opt.state[q][name].array, buf.array, err_msg=name)
    assert fresh_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    if opt_name == "adam":
        assert fresh_opt.param_groups[0]["betas"] == (0.8, 0.95)  # a tuple again, not a list


def test_the_json_holds_step_epoch_sampler_rng_config_and_file_digests(tmp_path):
    import safetensors.numpy

    model = make_model(0)
    opt = make_optimizer("sgd", model)
    train(model, opt, range(2))
    rng_at_save = get_rng_state()
    meta = {"epoch": 1, "sampler": {"epoch": 1, "batches_done": 2}, "config": {"lr": 0.1}}
    where = save_checkpoint(tmp_path, 120, model, opt, meta)
    assert os.path.basename(where) == "step-000120"
    with open(os.path.join(where, "checkpoint.json")) as f:
        record = json.load(f)
    assert record["step"] == 120 and record["epoch"] == 1
    assert record["sampler"] == {"epoch": 1, "batches_done": 2}
    assert record["config"] == {"lr": 0.1}
    assert record["rng"] == json.loads(json.dumps(rng_at_save))
    assert set(record["files"]) == {"model.safetensors", "optimizer.safetensors"}
    assert record["optimizer"]["param_groups"][0]["momentum"] == 0.9
    # an independent reader sees plain tensors under PyTorch-style names
    tensors = safetensors.numpy.load_file(os.path.join(where, "optimizer.safetensors"))
    assert sorted(tensors) == [f"state.{i}.momentum_buffer" for i in range(4)]
    np.testing.assert_array_equal(
        tensors["state.0.momentum_buffer"], opt.state[model[0].weight]["momentum_buffer"].array
    )
    assert not [n for n in os.listdir(where) if n.endswith((".pkl", ".pt", ".pickle"))]


def _flip_byte(path: str) -> None:
    with open(path, "r+b") as f:
        f.seek(-3, os.SEEK_END)
        byte = f.read(1)
        f.seek(-3, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))


def _truncate(path: str) -> None:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _garbage(path: str) -> None:
    with open(path, "w") as f:
        f.write('{"format": "sparkgrad-checkpoint", "step": ')


@pytest.mark.parametrize(
    "damage, file",
    [
        (_flip_byte, "model.safetensors"),
        (_truncate, "optimizer.safetensors"),
        (_garbage, "checkpoint.json"),
        (os.remove, "model.safetensors"),
    ],
)
def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning(tmp_path, damage, file):
    model = make_model(0)
    opt = make_optimizer("adam", model)
    saved = {}
    for step in (1, 2, 3):
        train(model, opt, range(step - 1, step))
        save_checkpoint(tmp_path, step, model, opt)
        saved[step] = weights(model)
    damage(os.path.join(tmp_path, "step-000003", file))
    with pytest.warns(UserWarning, match="skipping checkpoint step-000003"):
        ckpt = load_latest_checkpoint(tmp_path)
    assert ckpt.step == 2
    for key, value in saved[2].items():
        np.testing.assert_array_equal(ckpt.model_state[key], value)


def test_a_half_written_folder_is_invisible_and_a_failed_save_leaves_nothing(tmp_path):
    model = make_model(0)
    save_checkpoint(tmp_path, 1, model)
    # a crashed writer left its temporary folder behind, with a valid-looking file in it
    partial = tmp_path / "step-000009.tmp-4242"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(
        (tmp_path / "step-000001" / "model.safetensors").read_bytes()
    )
    assert list_checkpoints(tmp_path) == [1]
    assert load_latest_checkpoint(tmp_path).step == 1
    # a save that fails half-way (meta that JSON cannot hold) publishes nothing
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path, 2, model, meta={"config": object()})
    assert sorted(os.listdir(tmp_path)) == ["step-000001", "step-000009.tmp-4242"]
    save_checkpoint(tmp_path, 3, model)  # the next good save clears the leftovers
    assert sorted(os.listdir(tmp_path)) == ["step-000001", "step-000003"]


def test_only_the_last_k_checkpoints_are_kept(tmp_path):
    model = make_model(0)
    for step in range(1, 6):
        save_checkpoint(tmp_path, step * 10, model, keep=3)
    assert list_checkpoints(tmp_path) == [30, 40, 50]


def test_file_uris_and_pyarrow_filesystems_work_and_unknown_schemes_say_what_is_supported(
    tmp_path,
):
    from pyarrow.fs import LocalFileSystem

    model = make_model(0)
    save_checkpoint(f"file://{tmp_path}/a", 7, model)
    assert load_latest_checkpoint(tmp_path / "a").step == 7
    # the remote code path (upload, move, download) through a pyarrow file system
    save_checkpoint(str(tmp_path / "b"), 8, model, filesystem=LocalFileSystem())
    ckpt = load_latest_checkpoint(str(tmp_path / "b"), filesystem=LocalFileSystem())
    assert ckpt.step == 8
    for key, value in weights(model).items():
        np.testing.assert_array_equal(ckpt.model_state[key], value)
    assert load_latest_checkpoint(tmp_path / "empty") is None
    with pytest.raises(CheckpointError, match="Supported: local paths"):
        save_checkpoint("ftp://127.0.0.1/ckpt", 1, model)

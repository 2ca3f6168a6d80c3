"""``sg.save`` / ``sg.load``: round trips, the file format, damage and resuming training."""

from __future__ import annotations

import collections
import io
import json
import math
import os

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

import sparkgrad as sg
from sparkgrad.errors import CheckpointError
from sparkgrad.export import serialization


def roundtrip(obj, tmp_path, **load_kwargs):
    path = tmp_path / "obj.pt"
    sg.save(obj, path)
    return sg.load(path, **load_kwargs)


def same(a, b):
    """Equal values AND equal types, all the way down (tuple != list, int key != str key)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, sg.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device
        assert a.requires_grad == b.requires_grad
        np.testing.assert_array_equal(a.detach().to("cpu").numpy(), b.detach().to("cpu").numpy())
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b) and [type(k) for k in a] == [type(k) for k in b]
        for k in a:
            same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def test_plain_values_and_containers_round_trip(tmp_path):
    obj = {
        "epoch": 3,
        "name": "run-7",
        "none": None,
        "flag": True,
        "lr": 0.1,
        "nan": float("nan"),
        "neg_inf": float("-inf"),
        "big": 2**70,
        "tuple": (1, (2.0, "a"), []),
        "list": [1, [2, {"deep": False}]],
        7: "an int key",
        "ordered": collections.OrderedDict([("b", 1), ("a", 2)]),
        "empty": {},
    }
    same(obj, roundtrip(obj, tmp_path))
    same([], roundtrip([], tmp_path))
    same(2.5, roundtrip(2.5, tmp_path))


DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.bool_,
    np.complex64,
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0, 3), (2, 3, 4)])
def test_tensors_and_arrays_of_every_dtype_and_shape(tmp_path, dtype, shape):
    values = (np.arange(int(np.prod(shape))).reshape(shape) % 5).astype(dtype)
    obj = {"t": sg.tensor(values, dtype=dtype), "a": values.copy(), "s": values.reshape(-1)[:1]}
    same(obj, roundtrip(obj, tmp_path))


def test_numpy_scalars_views_and_byte_order(tmp_path):
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    obj = {
        "f32": np.float32(1.5),
        "i16": np.int16(-3),
        "b": np.bool_(True),
        "transposed": sg.tensor(base).T,
        "big_endian": np.arange(4, dtype=">i4"),
    }
    back = roundtrip(obj, tmp_path)
    for k in ("f32", "i16", "b"):
        assert type(back[k]) is type(obj[k]) and back[k] == obj[k]
    np.testing.assert_array_equal(back["transposed"].numpy(), base.T)
    np.testing.assert_array_equal(back["big_endian"], np.arange(4))


def test_requires_grad_parameters_and_shared_objects(tmp_path):
    model = sg.nn.Linear(3, 2)
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    obj = {"params": list(model.parameters()), "x": x, "again": x, "weight": model.weight}
    back = roundtrip(obj, tmp_path)
    assert isinstance(back["params"][0], sg.nn.Parameter) and back["params"][0].requires_grad
    assert back["x"].requires_grad and not isinstance(back["x"], sg.nn.Parameter)
    assert back["again"] is back["x"] and back["weight"] is back["params"][0]
    assert len(safetensors.numpy.load_file(tmp_path / "obj.pt")) == 3  # each stored once
    back["x"].array[0] = 5.0  # loaded tensors own writable memory
    assert back["again"].tolist()[0] == 5.0


def test_a_state_dict_file_is_a_safetensors_state_dict_for_pytorch(tmp_path):
    sg.manual_seed(0)
    model = sg.nn.Sequential(sg.nn.Linear(4, 3), sg.nn.ReLU(), sg.nn.Linear(3, 2))
    path = tmp_path / "model.pt"
    sg.save(model.state_dict(), path)
    state = safetensors.torch.load_file(path)
    assert sorted(state) == sorted(model.state_dict())
    twin = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    twin.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(
        twin(torch.tensor(x)).detach().numpy(), model(sg.tensor(x)).detach().numpy(), rtol=1e-6
    )
    back = sg.load(path)
    assert type(back) is type(model.state_dict())
    same(dict(model.state_dict()), dict(back))


def test_file_objects_and_weights_only(tmp_path):
    buf = io.BytesIO()
    sg.save({"a": sg.ones(2), "b": (1, 2)}, buf)
    buf.seek(0)
    back = sg.load(buf, weights_only=False)
    same({"a": sg.ones(2), "b": (1, 2)}, back)
    with pytest.raises(TypeError, match="path or a binary file object"):
        sg.save({}, 3)


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    sg.save({"v": 1}, path)
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    with pytest.raises(TypeError):
        sg.save({"v": 2, "bad": object()}, path)  # fails before writing anything
    assert sg.load(path) == {"v": 1}

    def crash(src, dst):
        raise OSError("disk yanked")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk yanked"):
        sg.save({"v": 3}, path)
    monkeypatch.undo()
    assert sg.load(path) == {"v": 1} and os.listdir(tmp_path) == ["ckpt.pt"]


@pytest.mark.parametrize(
    "obj, where",
    [
        ({"model": {"fn": lambda x: x}}, "obj['model']['fn']"),
        ({"a": [1, 2, {3, 4}]}, "obj['a'][2]"),
        ({"opt": {1.5: 2}}, "obj['opt']"),
        ({"arr": np.array(["x", "y"])}, "obj['arr']"),
        ({"c": np.zeros(2, np.complex128)}, "obj['c']"),
        ((collections.namedtuple("P", "x")(1),), "obj[0]"),
        ({"dd": collections.defaultdict(int)}, "obj['dd']"),
        ({"b": b"bytes"}, "obj['b']"),
    ],
)
def test_unsupported_objects_name_their_path(tmp_path, obj, where):
    with pytest.raises(TypeError) as info:
        sg.save(obj, tmp_path / "x.pt")
    assert where in str(info.value)
    assert not os.listdir(tmp_path)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "good.pt"
    sg.save({"epoch": 3, "w": sg.tensor(np.arange(64, dtype=np.float32))}, path)
    return path, path.read_bytes()


@pytest.mark.parametrize("keep", [0, 7, 8, 40, "header", "half", -1])
def test_truncated_files_give_checkpoint_error(tmp_path, saved, keep):
    _, raw = saved
    header_end = 8 + int.from_bytes(raw[:8], "little")
    n = {"header": header_end, "half": header_end + (len(raw) - header_end) // 2}.get(keep, keep)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(raw[:n])
    with pytest.raises(CheckpointError):
        sg.load(bad)


def test_altered_bytes_give_checkpoint_error(tmp_path, saved):
    _, raw = saved
    header_end = 8 + int.from_bytes(raw[:8], "little")
    data = bytearray(raw)
    data[header_end + 10] ^= 0xFF  # one tensor byte
    (tmp_path / "a.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        sg.load(tmp_path / "a.pt")
    header = json.loads(raw[8:header_end])
    header["__metadata__"][serialization.STRUCTURE_KEY] = header["__metadata__"][
        serialization.STRUCTURE_KEY
    ].replace("3", "4")  # a different epoch, same length
    text = json.dumps(header).encode()
    (tmp_path / "b.pt").write_bytes(len(text).to_bytes(8, "little") + text + raw[header_end:])
    with pytest.raises(CheckpointError, match="altered"):
        sg.load(tmp_path / "b.pt")


def test_files_that_are_not_ours_give_checkpoint_error(tmp_path):
    torch.save({"w": torch.ones(2)}, tmp_path / "torch.pt")
    with pytest.raises(CheckpointError, match="pickle"):
        sg.load(tmp_path / "torch.pt")
    safetensors.numpy.save_file({"w": np.ones(2, np.float32)}, tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="not one written by sg.save"):
        sg.load(tmp_path / "plain.safetensors")
    (tmp_path / "noise").write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(CheckpointError):
        sg.load(tmp_path / "noise")


def _file_with_structure(path, structure, arrays):
    text = json.dumps(structure)
    import hashlib

    meta = {
        serialization.FORMAT_KEY: serialization.FORMAT,
        serialization.STRUCTURE_KEY: text,
        serialization.STRUCTURE_DIGEST_KEY: hashlib.sha256(text.encode()).hexdigest(),
    }
    safetensors.numpy.save_file(arrays, path, metadata=meta)


def test_damaged_structure_and_map_location_errors(tmp_path):
    path = tmp_path / "s.pt"
    _file_with_structure(path, {"tensor": "missing"}, {"w": np.ones(2, np.float32)})
    with pytest.raises(CheckpointError, match="missing"):
        sg.load(path)
    _file_with_structure(path, {"set": [1, 2]}, {})
    with pytest.raises(CheckpointError, match="unknown node"):
        sg.load(path)
    sg.save({"w": sg.ones(2)}, path)
    with pytest.raises(TypeError, match="functions are not supported"):
        sg.load(path, map_location=lambda storage, loc: storage)


def test_map_location_moves_tensors(tmp_path, device):
    obj = {"w": sg.ones(2, 3).to(device), "a": np.ones(2)}
    path = tmp_path / "m.pt"
    sg.save(obj, path)
    assert sg.load(path)["w"].device == device
    assert sg.load(path, map_location="cpu")["w"].device == "cpu"
    assert sg.load(path, map_location={device: "cpu"})["w"].device == "cpu"
    assert isinstance(sg.load(path, map_location=device)["a"], np.ndarray)


def test_a_cuda_tensor_without_cuda_asks_for_map_location(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    _file_with_structure(
        path, {"dict": [["w", {"tensor": "w", "device": "cuda"}]]}, {"w": np.ones(2, np.float32)}
    )
    monkeypatch.setattr(serialization, "cuda_is_available", lambda: False)
    with pytest.raises(CheckpointError, match="map_location='cpu'"):
        sg.load(path)
    assert sg.load(path, map_location="cpu")["w"].tolist() == [1.0, 1.0]


def _train(model, opt, batches):
    for x, y in batches:
        opt.zero_grad()
        sg.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda p: sg.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
        lambda p: sg.optim.Adam(p, lr=0.01, betas=(0.8, 0.95)),
    ],
)
def test_a_resumed_optimizer_continues_exactly_like_an_uninterrupted_one(tmp_path, make_opt):
    rng = np.random.default_rng(0)
    batches = [
        (
            sg.tensor(rng.standard_normal((8, 5)).astype(np.float32)),
            sg.tensor(rng.integers(0, 3, 8)),
        )
        for _ in range(6)
    ]

    def build(seed):
        sg.manual_seed(seed)
        model = sg.nn.Sequential(sg.nn.Linear(5, 7), sg.nn.ReLU(), sg.nn.Linear(7, 3))
        return model, make_opt(model.parameters())

    model, opt = build(0)
    _train(model, opt, batches[:3])
    sg.save(
        {"epoch": 3, "model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "c.pt"
    )
    _train(model, opt, batches[3:])

    resumed, resumed_opt = build(1)  # different weights until the checkpoint is loaded
    ckpt = sg.load(tmp_path / "c.pt")
    assert ckpt["epoch"] == 3 and all(type(k) is int for k in ckpt["optimizer"]["state"])
    resumed.load_state_dict(ckpt["model"])
    resumed_opt.load_state_dict(ckpt["optimizer"])
    _train(resumed, resumed_opt, batches[3:])

    for (name, a), (_, b) in zip(model.state_dict().items(), resumed.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    same(opt.state_dict(), resumed_opt.state_dict())

"""Devices: ``sg.device``, the default device, and ``.to(...)``.

Checked against torch itself: ``sg.device`` builds, prints and compares like
``torch.device`` (with torch's errors), :func:`parse_to_args` reads every form of
``.to(...)`` into what ``torch._C._nn._parse_to`` reads it into, ``Module.to`` accepts what
torch's does, and the GPU questions (``sg.cuda.is_available()`` ...) are compared with what
CuPy itself reports.
"""

from __future__ import annotations

import copy
import pickle
import re

import numpy as np
import pytest
import torch

import sparkgrad as sg
import sparkgrad.autodiff.device as device_module
from sparkgrad.autodiff.backend import normalize_device
from sparkgrad.autodiff.device import parse_to_args, resolve
from sparkgrad.errors import DeviceError


def _torch_name(dtype: torch.dtype) -> str:
    return str(dtype).split(".")[1]


def _gpu_count() -> int:
    """What CuPy itself says, independently of sparkgrad."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


@pytest.fixture
def restore_default_device():
    yield
    sg.set_default_device(None)


# ---- sg.device -------------------------------------------------------------------------
DEVICE_SPECS = [("cpu",), ("cpu:0",), ("cpu", 1), ("cuda",), ("cuda:0",), ("cuda:1",)]
DEVICE_SPECS += [("cuda", 0), ("cuda", 3), ("cuda:12",)]


@pytest.mark.parametrize("spec", DEVICE_SPECS, ids=str)
def test_device_builds_prints_like_torch(spec):
    d, t = sg.device(*spec), torch.device(*spec)
    assert (d.type, d.index) == (t.type, t.index)
    assert str(d) == str(t) and repr(d) == repr(t)
    assert sg.device(d) == d and sg.device(str(d)) == d


def test_device_equality_and_hash_like_torch():
    for a in DEVICE_SPECS:
        for b in DEVICE_SPECS:
            same = sg.device(*a) == sg.device(*b)
            assert same == (torch.device(*a) == torch.device(*b)), (a, b)
            if same:
                assert hash(sg.device(*a)) == hash(sg.device(*b))
    assert (sg.device("cpu") == "cpu") == (torch.device("cpu") == "cpu") is False
    assert len({sg.device("cuda"), sg.device("cuda:0"), sg.device("cuda", 0)}) == 2


def test_device_is_immutable_and_survives_copies():
    d = sg.device("cuda", 2)
    with pytest.raises(AttributeError):
        d.index = 3
    assert copy.deepcopy(d) == d and pickle.loads(pickle.dumps(d)) == d


@pytest.mark.parametrize(
    "spec", [("gpu",), ("cuda:-1",), ("cuda:x",), ("cuda:01",), (" cuda",), ("CUDA",)], ids=str
)
def test_invalid_device_strings_are_torch_runtime_errors(spec):
    with pytest.raises(RuntimeError) as theirs:
        torch.device(*spec)
    with pytest.raises(DeviceError) as ours:
        sg.device(*spec)
    assert isinstance(ours.value, RuntimeError)
    for phrase in ("Invalid device string", "device type at start of device string"):
        assert (phrase in str(theirs.value)) == (phrase in str(ours.value))


def test_other_device_errors_follow_torch():
    for spec in [("cuda:0", 1), ("cuda", -1), (-1,)]:
        with pytest.raises(RuntimeError):
            torch.device(*spec)
        with pytest.raises(RuntimeError):
            sg.device(*spec)
    with pytest.raises(DeviceError, match="cpu, cuda"):
        sg.device("mps")  # a real torch type, but not one sparkgrad runs on
    with pytest.raises(TypeError):
        sg.device(1.5)


def test_int_device_means_the_gpu(monkeypatch):
    """torch: an int is the current accelerator's index, an error when there is none."""
    if _gpu_count() == 0:
        with pytest.raises(RuntimeError, match="Cannot access accelerator") as theirs:
            torch.device(0)
        with pytest.raises(RuntimeError, match=str(theirs.value)):
            sg.device(0)
    monkeypatch.setattr(device_module, "cuda_is_available", lambda: True)
    assert sg.device(0) == sg.device("cuda:0") and sg.device(np.int64(2)) == sg.device("cuda", 2)
    assert parse_to_args(1)[0] == sg.device("cuda", 1)


def test_normalize_device_and_resolve_accept_every_spelling():
    for spec in ["cpu", "cpu:0", sg.device("cpu"), sg.device("cpu", 1)]:
        assert normalize_device(spec) == "cpu" and resolve(spec) == "cpu"
    assert normalize_device(torch.device("cpu")) == "cpu"  # duck-typed: anything with .type
    for spec in ["cuda", "cuda:1", sg.device("cuda"), sg.device("cuda", 2), 0, 3]:
        assert normalize_device(spec) == "cuda"
    assert normalize_device(None) == "cpu" and resolve(None) == "cpu"
    with pytest.raises(DeviceError):
        normalize_device(-1)
    with pytest.raises(DeviceError):
        normalize_device("tpu")


# ---- the default device ------------------------------------------------------------------
def test_default_device_is_cpu_and_set_round_trips(restore_default_device):
    assert sg.get_default_device() == sg.device("cpu")
    assert repr(sg.get_default_device()) == repr(torch.get_default_device())
    sg.set_default_device("cuda")
    assert sg.get_default_device() == sg.device("cuda", 0)  # torch names the index it uses
    sg.set_default_device(sg.device("cpu"))
    assert sg.get_default_device() == sg.device("cpu")
    sg.set_default_device("cuda:1")
    sg.set_default_device(None)
    assert sg.get_default_device() == sg.device("cpu")


MAKERS = {
    "zeros": lambda **kw: sg.zeros(2, **kw),
    "full": lambda **kw: sg.full((2,), 1.0, **kw),
    "tensor": lambda **kw: sg.tensor([1.0, 2.0], **kw),
    "eye": lambda **kw: sg.eye(2, **kw),
    "arange": lambda **kw: sg.arange(3, **kw),
    "linspace": lambda **kw: sg.linspace(0, 1, 3, **kw),
    "rand": lambda **kw: sg.rand(2, **kw),
    "randint": lambda **kw: sg.randint(0, 5, (2,), **kw),
    "randperm": lambda **kw: sg.randperm(3, **kw),
    "Linear": lambda **kw: sg.nn.Linear(2, 2, **kw).weight,
}


@pytest.mark.parametrize("name", MAKERS)
def test_factories_honour_the_default_device(name, restore_default_device):
    """With "cuda" as the default every factory goes there (an error without a GPU proves
    it tried); an explicit device= still wins."""
    make = MAKERS[name]
    sg.set_default_device("cuda")
    if _gpu_count():
        assert make().device == "cuda"
    else:
        with pytest.raises(DeviceError, match="CuPy"):
            make()
    assert make(device="cpu").device == "cpu"
    sg.set_default_device("cpu")
    assert make().device == "cpu"


def test_device_as_context_manager(restore_default_device):
    with sg.device("cuda", 1) as d:
        assert d == sg.device("cuda", 1) and sg.get_default_device() == d
        with sg.device("cpu"):
            assert sg.zeros(1).device == "cpu"
        assert sg.get_default_device() == d
    assert sg.get_default_device() == sg.device("cpu")


# ---- parse_to_args vs torch's parser -----------------------------------------------------
def _pair(token):
    """The same argument for each engine: (sparkgrad value, torch value)."""
    table = {
        "cpu": ("cpu", "cpu"),
        "cuda:1": ("cuda:1", "cuda:1"),
        "dev_cpu": (sg.device("cpu"), torch.device("cpu")),
        "dev_cuda2": (sg.device("cuda", 2), torch.device("cuda", 2)),
        "f64": (sg.float64, torch.float64),
        "f16": (sg.half, torch.half),
        "long": (sg.long, torch.long),
        "py_float": (float, float),
        "py_int": (int, int),
        "py_bool": (bool, bool),
        "tensor64": (sg.zeros(1, dtype=sg.float64), torch.zeros(1, dtype=torch.float64)),
        "tensor_long": (sg.zeros(1, dtype=sg.long), torch.zeros(1, dtype=torch.long)),
        "str_f64": ("float64", "float64"),
        "bad_index": ("cuda:x", "cuda:x"),
    }
    return table[token] if isinstance(token, str) and token in table else (token, token)


TO_FORMS = [
    ((), {}),
    ((None,), {}),
    (("cpu",), {}),
    (("cuda:1",), {}),
    (("dev_cpu",), {}),
    (("dev_cuda2",), {}),
    (("f64",), {}),
    (("long",), {}),
    (("py_float",), {}),
    (("py_int",), {}),
    (("py_bool",), {}),
    (("tensor64",), {}),
    (("tensor_long", True), {}),
    (("cpu", "f64"), {}),
    (("dev_cuda2", "f16", True), {}),
    ((None, "f64"), {}),
    (("f64", True), {}),
    (("f64",), {"non_blocking": True}),
    ((), {"dtype": "f64"}),
    ((), {"device": "cpu", "dtype": "f16", "non_blocking": True}),
    ((), {"device": "dev_cuda2"}),
    (("cpu",), {"dtype": "long"}),
    ((), {"tensor": "tensor64"}),
    ((), {"non_blocking": True}),
    # invalid combinations: torch's TypeError (or RuntimeError for a bad device string)
    (("f64", "f64"), {}),
    (("cpu", "cpu"), {}),
    (("f64",), {"device": "cpu"}),
    (("f64",), {"dtype": "f16"}),
    (("tensor64",), {"dtype": "f64"}),
    (("tensor64",), {"device": "cpu"}),
    (("tensor64", "f64"), {}),
    (("cpu",), {"foo": 1}),
    (("cpu", "f64", False, False, 1), {}),
    (("str_f64",), {}),
    (("bad_index",), {}),
]


@pytest.mark.parametrize("form", range(len(TO_FORMS)))
def test_parse_to_args_reads_every_form_as_torch(form):
    """Same (device, dtype, non_blocking) as torch._C._nn._parse_to, or the same error."""
    args, kwargs = TO_FORMS[form]
    s_args = [_pair(a)[0] for a in args]
    t_args = [_pair(a)[1] for a in args]
    s_kw = {k: _pair(v)[0] for k, v in kwargs.items()}
    t_kw = {k: _pair(v)[1] for k, v in kwargs.items()}
    try:
        t_device, t_dtype, t_nb, _ = torch._C._nn._parse_to(*t_args, **t_kw)
    except (TypeError, RuntimeError) as exc:
        with pytest.raises(type(exc)):
            parse_to_args(*s_args, **s_kw)
        return
    device, dtype, non_blocking, copy_ = parse_to_args(*s_args, **s_kw)
    assert (device is None) == (t_device is None)
    if device is not None:
        assert (device.type, device.index) == (t_device.type, t_device.index)
    assert (dtype is None) == (t_dtype is None)
    if dtype is not None:
        assert dtype == np.dtype(_torch_name(t_dtype))
    assert non_blocking == t_nb and copy_ is False


def test_parse_to_args_reads_copy_as_tensor_to_does():
    """torch's parser refuses copy (Module.to does too); Tensor.to accepts it, positionally
    after non_blocking or as a keyword."""
    t = torch.zeros(2)
    assert t.to(torch.float32, False, True) is not t and t.to(copy=True) is not t
    assert parse_to_args(sg.float64, False, True) == (None, np.dtype("float64"), False, True)
    assert parse_to_args("cpu", None, True, True)[2:] == (True, True)
    assert parse_to_args(copy=True)[3] is True
    assert parse_to_args(sg.ones(1), False, True)[3] is True
    with pytest.raises(TypeError):
        parse_to_args("cpu", copy="yes")


# ---- Module.to ---------------------------------------------------------------------------
def _model(m):
    m.manual_seed(0)
    return m.nn.Sequential(m.nn.Linear(2, 3), m.nn.ReLU(), m.nn.Linear(3, 1))


MODULE_TO = [
    (("dev_cpu",), {}),
    (("cpu", "f64"), {}),
    (("f64",), {}),
    ((), {"dtype": "f64"}),
    ((), {"device": "dev_cpu", "dtype": "f16"}),
    (("tensor64",), {}),
    (("py_float",), {}),
    (("long",), {}),
    (("tensor_long",), {}),
    ((), {"copy": True}),
    (("f64",), {"copy": False}),
    (("f64", "f64"), {}),
]


@pytest.mark.parametrize("form", range(len(MODULE_TO)))
def test_module_to_accepts_what_torch_accepts(form):
    """Same parameter dtypes afterwards, or the same kind of error (integer dtypes:
    TypeError; copy=: RuntimeError)."""
    args, kwargs = MODULE_TO[form]
    model, t_model = _model(sg), _model(torch)
    s_args, t_args = [_pair(a)[0] for a in args], [_pair(a)[1] for a in args]
    s_kw = {k: _pair(v)[0] for k, v in kwargs.items()}
    t_kw = {k: _pair(v)[1] for k, v in kwargs.items()}
    try:
        t_model.to(*t_args, **t_kw)
    except (TypeError, RuntimeError) as exc:
        with pytest.raises(type(exc), match=re.escape(str(exc).split(",")[0][:30])):
            model.to(*s_args, **s_kw)
        return
    assert model.to(*s_args, **s_kw) is model
    for p, t_p in zip(model.parameters(), t_model.parameters()):
        assert p.dtype == np.dtype(_torch_name(t_p.dtype)) and p.device == t_p.device.type


def test_module_to_int_and_cuda_index_mean_the_gpu():
    model = _model(sg)
    if _gpu_count():
        assert next(model.to(0).parameters()).device == "cuda"
        assert next(model.cpu().cuda(0).parameters()).device == "cuda"
        return
    with pytest.raises(RuntimeError, match="Cannot access accelerator"):
        _model(torch).to(0)
    with pytest.raises(RuntimeError, match="Cannot access accelerator"):
        model.to(0)
    with pytest.raises(DeviceError, match="CuPy"):
        model.to(sg.device("cuda"))


# ---- sg.cuda, sg.accelerator, sg.backends ---------------------------------------------------
def test_cuda_queries_match_what_cupy_sees():
    count = _gpu_count()
    assert sg.cuda.is_available() == (count > 0) == sg.cuda_is_available()
    assert sg.cuda.device_count() == count == sg.accelerator.device_count()
    assert sg.accelerator.is_available() == (count > 0)
    want = sg.device("cuda") if count else None
    assert sg.accelerator.current_accelerator() == want
    if count:
        assert sg.cuda.current_device() == 0
        sg.cuda.synchronize()
    else:
        assert torch.accelerator.current_accelerator() is None  # torch agrees on this box
        for call in (sg.cuda.current_device, sg.cuda.synchronize):
            with pytest.raises(DeviceError, match="CuPy"):
                call()


@pytest.mark.parametrize("seed_fn", ["manual_seed", "manual_seed_all"])
def test_cuda_seeding_seeds_the_one_generator(seed_fn):
    """sparkgrad draws everything on the CPU: the cuda seeds are sg.manual_seed."""
    getattr(sg.cuda, seed_fn)(123)
    a = sg.rand(5).tolist()
    sg.manual_seed(123)
    assert sg.rand(5).tolist() == a
    getattr(sg.cuda, seed_fn)(124)
    assert sg.rand(5).tolist() != a


def test_backends_flags():
    """No MPS, no cuDNN; the cudnn switches tutorials set are accepted."""
    assert sg.backends.mps.is_available() is False and sg.backends.mps.is_built() is False
    assert sg.backends.cudnn.is_available() is False
    sg.backends.cudnn.deterministic = True
    sg.backends.cudnn.benchmark = False
    import sparkgrad.backends.cudnn as cudnn

    assert cudnn.deterministic is True
    cudnn.deterministic = False


def test_tutorial_device_line_works():
    """The line at the top of torch's tutorials, ported by changing the import."""
    device = sg.accelerator.current_accelerator().type if sg.accelerator.is_available() else "cpu"
    model = _model(sg).to(device)
    x = sg.ones(4, 2, device=device)
    assert model(x).device == ("cuda" if _gpu_count() else "cpu")
    device = sg.device("cuda" if sg.cuda.is_available() else "cpu")
    assert sg.zeros(1, device=device).device == device.type

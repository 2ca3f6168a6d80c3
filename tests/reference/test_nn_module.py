"""``Module`` as a tree: registration, names, printing and modes, checked against PyTorch.

A sparkgrad model should look exactly like the PyTorch model it mirrors: the same
parameter names in the same order (so state dicts interchange), the same ``print(model)``
text, the same container behaviour. For each property we build the same architecture in
both libraries and compare.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import sparkgrad as sg
from sparkgrad import nn


def mlp(lib, hidden: int = 256):
    """The reference MNIST MLP 784-256-256-10, in either library (``lib`` is the nn module)."""
    return lib.Sequential(
        lib.Flatten(), lib.Linear(784, hidden), lib.ReLU(), lib.Linear(hidden, hidden), lib.ReLU(),
        lib.Linear(hidden, 10),
    )  # fmt: skip


def net_class(lib):
    """A custom model with nested children, a bias-less layer and a plain attribute."""

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.embed = lib.Embedding(20, 8, padding_idx=0)
            self.blocks = lib.ModuleList([lib.Linear(8, 8) for _ in range(3)])
            self.norm = lib.LayerNorm(8, elementwise_affine=False)
            self.head = lib.Sequential(
                lib.Dropout(0.1), lib.Linear(8, 4, bias=False), lib.Softmax(dim=-1)
            )
            self.label = "not a parameter"

        def forward(self, ids):
            h = self.embed(ids)
            for block in self.blocks:
                h = block(h)
            return self.head(self.norm(h))

    return Net


def test_state_dict_keys_equal_torch():
    """The MLP's state dict keys (``1.weight``, ...) and shapes are PyTorch's, in order."""
    ours, theirs = mlp(nn).state_dict(), mlp(torch.nn).state_dict()
    assert list(ours) == list(theirs)
    assert [v.shape for v in ours.values()] == [tuple(v.shape) for v in theirs.values()]


def test_nested_names_and_order_equal_torch():
    """named_parameters, named_modules and named_children of a custom model match PyTorch."""
    ours, theirs = net_class(nn)(), net_class(torch.nn)()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert len(list(ours.parameters())) == len(list(theirs.parameters()))
    assert len(list(ours.parameters(recurse=False))) == 0


def test_repr_equals_torch():
    """``print(model)`` gives PyTorch's text, character for character."""
    assert repr(mlp(nn)) == repr(mlp(torch.nn))
    assert repr(net_class(nn)()) == repr(net_class(torch.nn)())
    for make in [
        lambda m: m.Sequential(m.Sequential(m.Linear(2, 3), m.GELU("tanh")), m.Sigmoid(), m.Tanh()),
        lambda m: m.ModuleList([m.ReLU(), m.ReLU(), m.Linear(1, 1), m.ReLU()]),
        lambda m: m.ModuleList([]),
        lambda m: m.Sequential(m.LogSoftmax(1), m.Flatten(0, 2), m.Dropout(p=0.25), m.Identity()),
        lambda m: m.Sequential(m.CrossEntropyLoss(), m.NLLLoss(), m.MSELoss(), m.Embedding(5, 2)),
        lambda m: m.ModuleDict({"enc": m.Linear(3, 3), "act": m.ReLU()}),
        lambda m: m.LayerNorm((2, 3), eps=1e-6, bias=False),
    ]:
        assert repr(make(nn)) == repr(make(torch.nn))


def test_linear_is_dense_layer():
    """``Linear`` and ``DenseLayer`` are one class; it prints as PyTorch's ``Linear``."""
    assert nn.Linear is nn.DenseLayer
    layer = nn.DenseLayer(3, 2)
    assert isinstance(layer, nn.Linear) and layer.weight.shape == (2, 3)
    assert repr(layer) == "Linear(in_features=3, out_features=2, bias=True)"

    class Scaled(nn.DenseLayer):
        pass

    assert repr(Scaled(1, 1)).startswith("Scaled(")


def test_parameter_is_a_tensor_that_requires_grad():
    p = nn.Parameter(sg.zeros(2, 2))
    assert isinstance(p, sg.Tensor) and p.requires_grad and p.is_leaf
    assert repr(p) == "Parameter containing:\n" + repr(sg.zeros(2, 2, requires_grad=True))
    assert not nn.Parameter(sg.zeros(1), requires_grad=False).requires_grad
    assert type(p * 2) is sg.Tensor, "results of ops are plain tensors"


def test_setattr_registers_and_validates():
    """Parameters and modules register on assignment, as in torch; wrong types are refused."""
    layer = nn.Linear(2, 2)
    old = layer.weight
    layer.weight = nn.Parameter(sg.ones(2, 2))  # re-assignment keeps the name's position
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert layer.weight is not old
    with pytest.raises(TypeError, match="parameter 'weight'"):
        layer.weight = sg.ones(2, 2)  # a plain Tensor cannot replace a Parameter
    layer.bias = None
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    assert "bias" not in layer.state_dict()

    holder = nn.Module()
    holder.layers = [nn.Linear(1, 1)]  # a plain list is invisible, exactly as in PyTorch
    assert list(holder.parameters()) == []
    holder.child = nn.Linear(1, 1)
    assert [n for n, _ in holder.named_parameters()] == ["child.weight", "child.bias"]
    del holder.child
    assert list(holder.parameters()) == [] and not hasattr(holder, "child")

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(sg.zeros(1))  # forgot super().__init__()

    with pytest.raises(AttributeError, match="__init__"):
        Early()


def test_shared_parameters_are_listed_once():
    """Weight tying: parameters() yields a shared tensor once, state_dict names it twice."""
    ours, theirs = (
        nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3)),
        torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)),
    )
    ours[1].weight = ours[0].weight
    theirs[1].weight = theirs[0].weight
    assert len(list(ours.parameters())) == len(list(theirs.parameters())) == 3
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_sequential_container_behaviour_matches_torch():
    """Indexing, negative indexing, slicing (keys kept), len, iteration, append, del."""
    ours, theirs = mlp(nn), mlp(torch.nn)
    assert len(ours) == len(theirs) == 6
    assert repr(ours[-1]) == repr(theirs[-1]) and repr(ours[1]) == repr(theirs[1])
    assert list(ours[1:4].state_dict()) == list(theirs[1:4].state_dict())
    assert [m._get_name() for m in ours] == [m._get_name() for m in theirs]
    ours.append(nn.Softmax(dim=1))
    theirs.append(torch.nn.Softmax(dim=1))
    del ours[2]
    del theirs[2]
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    with pytest.raises(IndexError):
        ours[len(ours)]


def test_sequential_runs_layers_in_order():
    """Sequential(a, b)(x) == b(a(x))."""
    sg.manual_seed(0)
    a, b = nn.Linear(4, 3), nn.Tanh()
    x = sg.randn(2, 4)
    np.testing.assert_array_equal(nn.Sequential(a, b)(x).detach().numpy(), b(a(x)).detach().numpy())


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(2, 2)])
    ml.append(nn.ReLU())
    ml += [nn.Linear(2, 1)]
    ml.insert(1, nn.Tanh())
    assert [type(m).__name__ for m in ml] == ["DenseLayer", "Tanh", "ReLU", "DenseLayer"]
    assert list(ml.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    assert isinstance(ml[1:], nn.ModuleList) and len(ml[1:]) == 3
    with pytest.raises(NotImplementedError, match="forward"):
        ml(sg.zeros(1))
    md = nn.ModuleDict({"a": nn.Linear(1, 1)})
    md["b"] = nn.ReLU()
    assert list(md) == ["a", "b"] and "a" in md and list(md.state_dict()) == ["a.weight", "a.bias"]


def test_train_eval_propagate_to_children():
    model = net_class(nn)()
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_zero_grad_set_to_none_and_to_zero():
    """Default (PyTorch 2.x): grads become None; set_to_none=False keeps zero arrays."""
    model = mlp(nn, hidden=8)
    model(sg.randn(3, 784)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_to_changes_arrays_in_place_keeping_parameter_objects():
    """``to(float64)`` / ``to("cpu")`` keep the same Parameter objects (optimizers stay valid)."""
    model = mlp(nn, hidden=8)
    params = list(model.parameters())
    before = [p.detach().numpy().copy() for p in params]
    assert model.double() is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 for p in params)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.detach().numpy(), b.astype(np.float64))
    model.to("cpu").float()
    assert all(p.dtype == np.float32 and p.device == "cpu" for p in params)


@pytest.mark.cuda
@pytest.mark.skipif(not sg.cuda_is_available(), reason="needs CuPy and an NVIDIA GPU")
def test_to_cuda_moves_parameters_and_grads():
    model = mlp(nn, hidden=8)
    model(sg.randn(2, 784)).sum().backward()
    x = sg.randn(2, 784)
    cpu_out = model(x).detach().numpy()
    model.cuda()
    assert all(p.device == "cuda" and p.grad.device == "cuda" for p in model.parameters())
    np.testing.assert_allclose(
        model(x.cuda()).detach().cpu().numpy(), cpu_out, rtol=1e-5, atol=1e-6
    )


def test_forward_hooks_run_and_can_be_removed():
    """Pre-hooks may replace the input, forward hooks the output; remove() unregisters."""
    layer = nn.Identity()
    seen = []
    h1 = layer.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    h2 = layer.register_forward_hook(lambda m, args, out: seen.append(out.item()))
    assert layer(sg.tensor(3.0)).item() == 6.0 and seen == [6.0]
    h1.remove()
    h2.remove()
    assert layer(sg.tensor(3.0)).item() == 3.0 and seen == [6.0]


def test_deepcopy_gives_independent_equal_model():
    """copy.deepcopy (used to build replicas) copies values and detaches storage."""
    model = mlp(nn, hidden=8)
    clone = copy.deepcopy(model)
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), clone.named_parameters()):
        assert n1 == n2 and p1 is not p2 and isinstance(p2, nn.Parameter)
        np.testing.assert_array_equal(p1.detach().numpy(), p2.detach().numpy())
    with sg.no_grad():
        clone[1].weight.fill_(0.0)
    assert model[1].weight.detach().numpy().any()


def test_buffers_are_state_but_not_parameters():
    m = nn.Module()
    m.register_buffer("running", sg.zeros(3))
    m.register_buffer("scratch", sg.zeros(2), persistent=False)
    assert list(m.parameters()) == [] and len(list(m.buffers())) == 2
    assert list(m.state_dict()) == ["running"]

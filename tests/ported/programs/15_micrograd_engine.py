# micrograd's test_engine.py, the torch side of it: scalar expressions built from + * ** relu
# and the reversed operators (2 * x, 10.0 / f, -a), backward, every value and gradient printed
# in double precision. micrograd compares its Value against these numbers.
import torch


def sanity_check():
    x = torch.Tensor([-4.0]).double()
    x.requires_grad = True
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    return {"y": y.data.item(), "dy/dx": x.grad.item()}


def more_ops():
    a = torch.Tensor([-4.0]).double()
    b = torch.Tensor([2.0]).double()
    a.requires_grad = True
    b.requires_grad = True
    c = a + b
    d = a * b + b**3
    c = c + c + 1
    c = c + 1 + c + (-a)
    d = d + d * 2 + (b + a).relu()
    d = d + 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g = g + 10.0 / f
    g.backward()
    return {"g": g.data.item(), "dg/da": a.grad.item(), "dg/db": b.grad.item()}


def reversed_ops():
    x = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    y = 1 - x + 2 / x - 2**x + x**-1.5 + (-x).relu() + 5 * x
    y.backward()
    return {"y": y.item(), "dy/dx": x.grad.item(), "float64": x.grad.dtype == torch.float64}


for name, fn in (
    ("sanity_check", sanity_check),
    ("more_ops", more_ops),
    ("reversed", reversed_ops),
):
    for key, value in fn().items():
        print(f"{name} {key} {value!r}")

"""The ``model`` Param: a JSON architecture spec, resolved against the data, built from a seed.

A spec names one of :mod:`sparkgrad.models`' classifiers and its options; the sizes the
data decides are filled in by :func:`resolve` once the features and labels are known::

    {"name": "mlp", "hidden": [256, 256]}          # default: Linear-ReLU-...-Linear
    {"name": "mlp", "hidden": [64], "classes": 10} # fix the classes (labels must fit)
    {"name": "cnn"}                                # PyTorch's MNIST CNN: 784 features
    {"name": "vit", "d_model": 64, "heads": 4, "layers": 2, "dropout": 0.0}

The resolved spec (``{"name": "mlp", "hidden": [256, 256], "in": 784, "out": 10}``) is
what the ranks build, what a saved model stores, and what :func:`torch_module` rebuilds
in PyTorch for the MLP. It is plain JSON: a model never travels or persists as a pickle.
"""

from __future__ import annotations

import json
from typing import Any

from sparkgrad.errors import ConfigError

#: name -> (options it takes, fixed input size or None, fixed classes or None, loss)
MODELS: dict[str, tuple[tuple[str, ...], int | None, int | None, str]] = {
    "mlp": (("hidden", "classes"), None, None, "cross_entropy"),
    "cnn": ((), 784, 10, "nll"),  # ends in log_softmax, as PyTorch's MNIST example
    "vit": (("d_model", "heads", "layers", "dropout", "classes"), 784, None, "cross_entropy"),
}
RESOLVED_KEYS = ("in", "out")  # filled in by resolve()


def parse(text_or_dict: str | dict) -> dict:
    spec = json.loads(text_or_dict) if isinstance(text_or_dict, str) else dict(text_or_dict)
    name = spec.get("name")
    if name not in MODELS:
        raise ConfigError(
            f"model: expected a name among {', '.join(MODELS)} (sparkgrad.models' "
            f"classifiers), found {name!r}"
        )
    allowed = set(MODELS[name][0]) | {"name", *RESOLVED_KEYS}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(
            f"model {name!r}: unknown options {unknown}; it takes {sorted(MODELS[name][0])}"
        )
    if name == "mlp":
        hidden = spec.get("hidden", [256, 256])
        if not isinstance(hidden, list) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden
        ):
            raise ConfigError(
                f'model mlp: "hidden" must be a list of positive widths such as [256, 256], '
                f"found {hidden!r}"
            )
        spec["hidden"] = hidden
    return spec


def fixed_classes(spec: dict) -> int | None:
    """The number of classes the spec fixes (``"classes"``, or the model's own), else None."""
    return spec.get("classes", MODELS[spec["name"]][2])


def resolve(spec: dict, num_features: int, num_outputs: int) -> dict:
    """The spec with its input and output sizes; ConfigError when the model cannot take them."""
    spec = parse(spec)
    name = spec["name"]
    needs_in, fixed_out = MODELS[name][1], MODELS[name][2]
    if needs_in is not None and num_features != needs_in:
        raise ConfigError(
            f"model {name!r} reads 28x28 images: expected {needs_in} features per row, found "
            f"{num_features}; use the mlp for other inputs"
        )
    if fixed_out is not None and num_outputs > fixed_out:
        raise ConfigError(
            f"model {name!r} has {fixed_out} outputs: expected labels in [0, {fixed_out}), "
            f"found {num_outputs} classes"
        )
    for key, value in (("in", num_features), ("out", fixed_out or num_outputs)):
        if key in spec and spec[key] != value:
            raise ConfigError(f'model {name!r}: "{key}" is {spec[key]}, the data gives {value}')
        spec[key] = value
    return spec


def build(spec: dict, seed: int) -> Any:
    """The model of a resolved spec, drawn right after ``manual_seed(seed)``."""
    name = spec["name"]
    if name == "mlp":
        from sparkgrad.models.mlp import build_mlp

        return build_mlp(tuple(spec["hidden"]), seed, n_in=spec["in"], n_out=spec["out"])
    if name == "cnn":
        from sparkgrad.models.cnn import build_cnn

        return build_cnn(seed)
    from sparkgrad.models.vit import build_vit

    options = {"d_model": 64, "heads": 4, "layers": 2, "dropout": 0.0, **spec}
    return build_vit(
        seed,
        d_model=options["d_model"],
        nhead=options["heads"],
        num_layers=options["layers"],
        dropout=options["dropout"],
        num_classes=spec["out"],
    )


def loss(spec: dict, regression: bool = False) -> Any:
    """The training loss: cross-entropy on logits, NLL after log_softmax, MSE for regression."""
    import sparkgrad as sg

    if regression:
        return sg.nn.MSELoss()
    return sg.nn.NLLLoss() if MODELS[spec["name"]][3] == "nll" else sg.nn.CrossEntropyLoss()


def torch_module(spec: dict) -> Any:
    """The same MLP as a ``torch.nn.Sequential`` (same ``state_dict`` keys), for PyTorch."""
    import torch

    if spec["name"] != "mlp":
        raise ConfigError(f"torch_module rebuilds the mlp only, found {spec['name']!r}")
    sizes = [spec["in"], *spec["hidden"], spec["out"]]
    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)

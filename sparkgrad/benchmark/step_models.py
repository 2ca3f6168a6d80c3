"""One training step of a sequence model (``--model gpt|vit|lstm-lm|seq2seq``) in sparkgrad
and in PyTorch, side by side.

    python -m sparkgrad.benchmark.step --model gpt      # the defaults of main.py --model gpt
    python -m sparkgrad.benchmark.step --model vit

The PyTorch twin (:mod:`sparkgrad.benchmark.torch_models`) loads the sparkgrad model's
``state_dict``, so both start from the same weights; both see the same batch, the same
loss (cross-entropy over every position), AdamW with the same settings, the same threads,
and are timed interleaved round by round (see :func:`sparkgrad.benchmark.step._time`).
Dropout is 0 (the default), so the two compute the same numbers.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import numpy as np

import sparkgrad as sg

MODEL_CHOICES = ("gpt", "vit", "lstm-lm", "seq2seq")


def model_case(model: str, batch: int | None = None) -> tuple[Callable, Callable, dict]:
    """``(sparkgrad_step, torch_step, sizes)`` for ``model`` at main.py's default sizes."""
    import torch

    from sparkgrad.benchmark import torch_models as tm
    from sparkgrad.engine.cli import parse_config
    from sparkgrad.engine.model import MODELS

    config = parse_config(["--model", model, "--strategy", "single"])
    batch = batch or config.batch_size
    rng = np.random.default_rng(0)
    vocab = "".join(chr(32 + i) for i in range(100))  # pydoc-topics has about 100 characters
    s_model = MODELS[model].build(config, vocab)
    sizes = {"model": model, "batch": batch, "d_model": config.d_model, "layers": config.layers}
    if model == "vit":
        t_model = tm.TorchViT(7, config.d_model, config.heads, config.layers)
        x, y = rng.random((batch, 784), dtype=np.float32), rng.integers(0, 10, batch)
    elif model == "seq2seq":
        from sparkgrad.dataset.reversal import make_reversal

        t_model = tm.TorchSeq2Seq(13, 10, config.d_model, config.heads, config.layers)
        x, y = (a[:batch] for a in make_reversal(batch))
    else:
        kind = tm.TorchGPT if model == "gpt" else tm.TorchLSTMLM
        options = {"nhead": config.heads} if model == "gpt" else {}
        t_model = kind(
            len(vocab), config.context, config.d_model, num_layers=config.layers, **options
        )
        x = rng.integers(0, len(vocab), (batch, config.context))
        y = rng.integers(0, len(vocab), (batch, config.context))
        sizes["context"] = config.context
    t_model.load_state_dict({k: torch.tensor(v.numpy()) for k, v in s_model.state_dict().items()})
    s_model.train(), t_model.train()
    s_loss, ignore = MODELS[model].loss(), getattr(MODELS[model].loss(), "ignore_index", -100)
    s_opt = sg.optim.AdamW(s_model.parameters(), lr=config.lr)
    t_opt = torch.optim.AdamW(t_model.parameters(), lr=config.lr)
    sx, sy, tx, ty = sg.tensor(x), sg.tensor(y), torch.tensor(x), torch.tensor(y)

    def t_loss(out: torch.Tensor) -> torch.Tensor:
        if out.ndim == 2:
            return torch.nn.functional.cross_entropy(out, ty)
        return torch.nn.functional.cross_entropy(
            out.reshape(-1, out.shape[-1]), ty.reshape(-1), ignore_index=ignore
        )

    def sg_step() -> None:
        s_opt.zero_grad()
        s_loss(s_model(sx), sy).backward()
        s_opt.step()

    def torch_step() -> None:
        t_opt.zero_grad()
        t_loss(t_model(tx)).backward()
        t_opt.step()

    return sg_step, torch_step, sizes


def run_model(model: str, repeats: int = 5, steps: int = 5, batch: int | None = None) -> dict:
    """Median milliseconds per step of both engines, interleaved round by round."""
    from sparkgrad.benchmark.step import _time

    sg_step, torch_step, sizes = model_case(model, batch)
    nothing = lambda: None  # noqa: E731 - CPU: nothing to synchronize
    for fn in (sg_step, torch_step):
        _time(fn, nothing, 2)
    s_times, t_times = [], []
    for _ in range(repeats):
        s_times.append(_time(sg_step, nothing, steps))
        t_times.append(_time(torch_step, nothing, steps))
    s_ms, t_ms = statistics.median(s_times), statistics.median(t_times)
    return {**sizes, "sparkgrad_ms": s_ms, "torch_ms": t_ms, "ratio": s_ms / t_ms}


def format_row(r: dict) -> str:
    timings = ("model", "sparkgrad_ms", "torch_ms", "ratio")
    shape = ", ".join(f"{k}={v}" for k, v in r.items() if k not in timings)
    return (
        f"{r['model']:>8} {r['sparkgrad_ms']:>13.2f} {r['torch_ms']:>9.2f} {r['ratio']:>6.2f}   "
        f"{shape}"
    )

"""``--recompute`` on the GPT: peak activation memory and step time, none vs blocks vs selective.

    python -m sparkgrad.benchmark.recompute                 # 8 layers, context 128
    python -m sparkgrad.benchmark.recompute --layers 16 --context 256 --steps 3
    python -m sparkgrad.benchmark.recompute --sweep 4,16,36 # O(L) against O(sqrt(L))

One process, one model per mode, built from the same seed and trained on the same random
token windows with AdamW and dropout on. Per mode it prints:

- ``forward`` / ``peak``: bytes the graph keeps for backward at the end of forward and at
  the step's peak (:class:`~sparkgrad.autodiff.saved_memory.ActivationTracker`: with
  ``blocks`` the peak is in backward, while one layer is recomputed);
- ``predicted``: the peak the memory plans' formula gives from the shapes alone
  (:mod:`sparkgrad.parallel.activation_memory`), and ``pred/meas``;
- ``vs none``: the peak as a share of ``none``'s;
- ``step ms``: the median wall time of forward + backward + optimizer step (the price:
  ``blocks`` runs each layer's forward twice, ``selective`` only attention's core);
- ``same grads``: whether every gradient equals ``none``'s bit for bit (it must).

Selective recompute saves the ``(N, H, s, s)`` probabilities and dropout mask, so its share
grows with the context; blocks keep one ``(N, s, d)`` input per layer.

``sqrt`` checkpoints the blocks with ``sparkgrad.utils.checkpoint.checkpoint_sequential(
blocks, segments=ceil(sqrt(L)), x)``: ``S − 1`` segments keep only their input, the last
segment runs plain, so the peak is ``S − 1`` inputs ``c`` plus one segment's activations,
``(S − 1)·c + (L − (S − 1)·(L // S))·A`` (``A``: one layer's bytes; ``L = S²``: ``(S − 1)·c
+ S·A``). ``--sweep`` runs every mode at several depths (tiny width, one measured step each)
and prints the growth: ``none`` ∝ L, ``sqrt`` ∝ sqrt(L), ``blocks`` L inputs + one block.
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import time

import numpy as np

import sparkgrad as sg
from sparkgrad.autodiff import nn
from sparkgrad.autodiff.saved_memory import ActivationTracker
from sparkgrad.models.gpt import GPT, build_gpt
from sparkgrad.models.recompute import RECOMPUTE_MODES
from sparkgrad.models.sequence_parts import TokenCrossEntropy
from sparkgrad.parallel.activation_memory import ActivationShare, activation_bytes
from sparkgrad.parallel.memory_shapes import ModelShape
from sparkgrad.utils.checkpoint import checkpoint_sequential

VOCAB = 64
MODES = (*RECOMPUTE_MODES, "sqrt")  # sqrt: checkpoint_sequential(blocks, ceil(sqrt(L)), x)
TINY = {"d_model": 16, "context": 16, "heads": 2, "batch": 2}  # --sweep's defaults


def segments(layers: int) -> int:
    """``ceil(sqrt(layers))``: the segments of the ``sqrt`` mode."""
    return math.isqrt(layers - 1) + 1


def sequential_forward(model: GPT, ids: sg.Tensor) -> sg.Tensor:
    """The GPT's forward, its blocks run by ``checkpoint_sequential(blocks, ceil(sqrt(L)), x)``."""
    t = ids.shape[1]
    x = model.token(ids) + model.position(model._arange(t, ids.device))
    mask = nn.Transformer.generate_square_subsequent_mask(t, device=ids.device)
    layers = [functools.partial(b, src_mask=mask, is_causal=True) for b in model.blocks.layers]
    x = checkpoint_sequential(layers, segments(len(layers)), model.dropout(x))
    return model.head(model.norm(x))


def predicted_peak(mode: str, args: argparse.Namespace) -> int:
    """The memory plans' formula for this mode's peak, from the shapes alone."""
    shape = ModelShape.gpt(
        VOCAB, args.context, args.d_model, args.heads, args.layers, dropout=0.1,
        recompute="sequential" if mode == "sqrt" else mode,
    )  # fmt: skip
    return activation_bytes(shape, ActivationShare(args.batch))["peak"]


def measure(mode: str, args: argparse.Namespace) -> dict:
    """Peak activation bytes of one step, median step time, and the first step's gradients."""
    model = build_gpt(
        VOCAB, seed=0, recompute="none" if mode == "sqrt" else mode, context=args.context,
        d_model=args.d_model, nhead=args.heads, num_layers=args.layers, dropout=0.1,
    )  # fmt: skip
    forward = functools.partial(sequential_forward, model) if mode == "sqrt" else model
    optimizer = sg.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = TokenCrossEntropy()
    rng = np.random.default_rng(1)
    windows = rng.integers(0, VOCAB, (args.steps + 1, args.batch, args.context + 1))
    sg.manual_seed(2)  # the dropout stream: the same for every mode
    times, grads, tracker = [], None, ActivationTracker()
    for i, window in enumerate(windows):
        x, y = sg.tensor(window[:, :-1]), sg.tensor(window[:, 1:])
        start = time.perf_counter()
        optimizer.zero_grad()
        if i == 0:
            with tracker:
                loss = loss_fn(forward(x), y)
                tracker.mark_forward(loss)
                loss.backward()
            grads = [p.grad.numpy().copy() for p in model.parameters()]
        else:
            loss = loss_fn(forward(x), y)
            loss.backward()
        optimizer.step()
        if i > 0:  # the first step pays for the measuring walks
            times.append(time.perf_counter() - start)
    return {
        "forward": tracker.forward_bytes,
        "peak": tracker.peak_bytes,
        "predicted": predicted_peak(mode, args),
        "step_ms": statistics.median(times) * 1e3 if times else float("nan"),
        "grads": grads,
    }


def same_grads(r: dict, base: dict) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(r["grads"], base["grads"], strict=True))


def table(results: dict[str, dict]) -> str:
    base = results["none"]
    lines = [
        f"{'recompute':<11}{'forward MiB':>13}{'peak MiB':>11}{'predicted':>11}{'pred/meas':>11}"
        f"{'vs none':>9}{'step ms':>10}{'same grads':>12}"
    ]
    for mode, r in results.items():
        lines.append(
            f"{mode:<11}{r['forward'] / 2**20:>13.2f}{r['peak'] / 2**20:>11.2f}"
            f"{r['predicted'] / 2**20:>11.2f}{r['predicted'] / r['peak']:>11.3f}"
            f"{r['peak'] / base['peak']:>9.2f}{r['step_ms']:>10.1f}"
            f"{'yes' if same_grads(r, base) else 'NO':>12}"
        )
    return "\n".join(lines)


def sweep(depths: list[int], args: argparse.Namespace) -> dict[int, dict[str, dict]]:
    """Every mode at every depth in ``depths`` (one measured step each)."""
    return {
        layers: {m: measure(m, argparse.Namespace(**{**vars(args), "layers": layers}))
                 for m in MODES}
        for layers in depths
    }  # fmt: skip


def sweep_table(results: dict[int, dict[str, dict]]) -> str:
    """Peak bytes measured and predicted per depth and mode, then the growth per mode."""
    lines = [f"{'layers':>6}  {'recompute':<10}{'peak B':>12}{'predicted B':>13}{'pred/meas':>11}"
             f"{'same grads':>12}"]  # fmt: skip
    for layers, by_mode in results.items():
        for mode, r in by_mode.items():
            same = "yes" if same_grads(r, by_mode["none"]) else "NO"
            lines.append(
                f"{layers:>6}  {mode:<10}{r['peak']:>12,}{r['predicted']:>13,}"
                f"{r['predicted'] / r['peak']:>11.3f}{same:>12}"
            )
    first, last = min(results), max(results)
    ratio = last / first
    growth = ", ".join(
        f"{m} {results[last][m]['peak'] / results[first][m]['peak']:.2f}x" for m in MODES
    )
    lines.append(
        f"peak growth from {first} to {last} layers ({ratio:g}x the layers, sqrt "
        f"{math.sqrt(ratio):.2f}x): {growth}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--context", type=int, default=None, help="default 128 (--sweep: 16)")
    p.add_argument("--d-model", type=int, default=None, help="default 64 (--sweep: 16)")
    p.add_argument("--heads", type=int, default=None, help="default 4 (--sweep: 2)")
    p.add_argument("--batch", type=int, default=None, help="default 8 (--sweep: 2)")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps after the measured one (default 3; --sweep: 0)")  # fmt: skip
    p.add_argument("--sweep", default=None, metavar="L,L,...",
                   help="every mode at these depths, tiny width: the peak's growth")  # fmt: skip
    args = p.parse_args(argv)
    defaults = TINY if args.sweep else {"d_model": 64, "context": 128, "heads": 4, "batch": 8}
    for key, value in {**defaults, "steps": 0 if args.sweep else 3}.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    size = (
        f"d_model {args.d_model}, {args.heads} heads, context {args.context}, batch "
        f"{args.batch}, dropout 0.1, float32"
    )
    if args.sweep:
        depths = [int(d) for d in args.sweep.split(",")]
        text = f"gpt: {size}; peak activation bytes by depth\n" + sweep_table(sweep(depths, args))
    else:
        results = {mode: measure(mode, args) for mode in MODES}
        text = f"gpt: {args.layers} layers, {size}\n" + table(results)
    print(text)
    return text


if __name__ == "__main__":
    main()

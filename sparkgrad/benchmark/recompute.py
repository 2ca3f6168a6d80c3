"""``--recompute`` on the GPT: peak activation memory and step time, none vs blocks vs selective.

    python -m sparkgrad.benchmark.recompute                 # 8 layers, context 128
    python -m sparkgrad.benchmark.recompute --layers 16 --context 256 --steps 3

One process, one model per mode, built from the same seed and trained on the same random
token windows with AdamW and dropout on. Per mode it prints:

- ``forward`` / ``peak``: bytes the graph keeps for backward at the end of forward and at
  the step's peak (:class:`~sparkgrad.autodiff.saved_memory.ActivationTracker`: with
  ``blocks`` the peak is in backward, while one layer is recomputed);
- ``vs none``: the peak as a share of ``none``'s;
- ``step ms``: the median wall time of forward + backward + optimizer step (the price:
  ``blocks`` runs each layer's forward twice, ``selective`` only attention's core);
- ``same grads``: whether every gradient equals ``none``'s bit for bit (it must).

Selective recompute saves the ``(N, H, s, s)`` probabilities and dropout mask, so its share
grows with the context; blocks keep one ``(N, s, d)`` input per layer.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import sparkgrad as sg
from sparkgrad.autodiff.saved_memory import ActivationTracker
from sparkgrad.models.gpt import build_gpt
from sparkgrad.models.recompute import RECOMPUTE_MODES
from sparkgrad.models.sequence_parts import TokenCrossEntropy

VOCAB = 64


def measure(mode: str, args: argparse.Namespace) -> dict:
    """Peak activation bytes of one step, median step time, and the first step's gradients."""
    model = build_gpt(
        VOCAB, seed=0, recompute=mode, context=args.context, d_model=args.d_model,
        nhead=args.heads, num_layers=args.layers, dropout=0.1,
    )  # fmt: skip
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
                loss = loss_fn(model(x), y)
                tracker.mark_forward(loss)
                loss.backward()
            grads = [p.grad.numpy().copy() for p in model.parameters()]
        else:
            loss = loss_fn(model(x), y)
            loss.backward()
        optimizer.step()
        if i > 0:  # the first step pays for the measuring walks
            times.append(time.perf_counter() - start)
    return {
        "forward": tracker.forward_bytes,
        "peak": tracker.peak_bytes,
        "step_ms": statistics.median(times) * 1e3 if times else float("nan"),
        "grads": grads,
    }


def table(results: dict[str, dict]) -> str:
    base = results["none"]
    lines = [
        f"{'recompute':<11}{'forward MiB':>13}{'peak MiB':>11}{'vs none':>9}{'step ms':>10}"
        f"{'same grads':>12}"
    ]
    for mode, r in results.items():
        same = all(np.array_equal(a, b) for a, b in zip(r["grads"], base["grads"], strict=True))
        lines.append(
            f"{mode:<11}{r['forward'] / 2**20:>13.2f}{r['peak'] / 2**20:>11.2f}"
            f"{r['peak'] / base['peak']:>9.2f}{r['step_ms']:>10.1f}{'yes' if same else 'NO':>12}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3, help="timed steps after the measured one")
    args = p.parse_args(argv)
    results = {mode: measure(mode, args) for mode in RECOMPUTE_MODES}
    text = (
        f"gpt: {args.layers} layers, d_model {args.d_model}, {args.heads} heads, context "
        f"{args.context}, batch {args.batch}, dropout 0.1, float32\n" + table(results)
    )
    print(text)
    return text


if __name__ == "__main__":
    main()

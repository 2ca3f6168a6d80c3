"""Do the sequence models learn? Train each with main.py's defaults and print its score.

    python -m sparkgrad.benchmark.sequence_targets               # vit, gpt, seq2seq
    python -m sparkgrad.benchmark.sequence_targets --models vit

The targets (issue 15), measured here rather than in timed tests:

- ``vit`` on the embedded digits (``mnist-5k``): >= 95% test accuracy within its default
  epochs, in under 3 minutes on 2 CPU cores;
- ``gpt`` on ``pydoc-topics``: a validation loss clearly below the corpus's unigram
  entropy (the loss of a model that ignores context), and a readable sample;
- ``seq2seq`` on ``reverse:20000``: >= 99% exact match.

Each run is ``sparkgrad.engine.run.run`` with ``--strategy single`` — the same code path
as ``python main.py --strategy single --model NAME``.
"""

from __future__ import annotations

import argparse
import json
import os

TARGETS = {"vit": 0.95, "seq2seq": 0.99}
VIT_SECONDS = 180.0


def train(model: str, extra: list[str]) -> tuple[object, object]:
    """Train ``model`` with its defaults; returns (RunResult, the trained sparkgrad model)."""
    import sparkgrad as sg
    from sparkgrad.engine.cli import parse_config
    from sparkgrad.engine.model import MODELS
    from sparkgrad.engine.run import run

    config = parse_config(["--model", model, "--strategy", "single", "--no-progress", *extra])
    result = run(config)
    trained = MODELS[model].build(config, result.vocab)
    trained.load_state_dict({k: sg.tensor(v) for k, v in result.state_dict.items()})
    return result, trained


def gpt_report(result: object, model: object) -> dict:
    """Validation loss against the unigram entropy, and a sample from a prompt."""
    import sparkgrad as sg
    from sparkgrad.dataset.text import CharVocab, read_corpus

    text = read_corpus(result.config.data)
    vocab = CharVocab(result.vocab)
    entropy = vocab.unigram_entropy(text)
    sg.manual_seed(0)
    prompt = sg.tensor(vocab.encode("The ")[None, :])
    sample = vocab.decode(model.generate(prompt, 200, temperature=0.8, top_k=10).numpy()[0])
    loss = result.history[-1]["test_loss"]
    return {"test_loss": loss, "unigram_entropy": entropy, "below": loss < entropy - 1.0,
            "sample": sample}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="vit,gpt,seq2seq")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    out: dict = {}
    for model in args.models.split(","):
        result, trained = train(model, [])
        row = {"wall_s": result.wall_seconds, "epochs": result.config.epochs, "score": result.score}
        if model == "gpt":
            row |= gpt_report(result, trained)
            verdict = "PASS" if row["below"] else "FAIL"
            print(
                f"gpt: validation loss {row['test_loss']:.3f} nats/char vs unigram entropy "
                f"{row['unigram_entropy']:.3f} ({verdict}: target at least 1 nat below), "
                f"{row['wall_s']:.0f} s\nsample: {row['sample']!r}"
            )
        else:
            target = TARGETS[model]
            ok = result.score >= target and (model != "vit" or result.wall_seconds < VIT_SECONDS)
            print(
                f"{model}: {result.score:.2%} after {row['epochs']} epochs in "
                f"{row['wall_s']:.0f} s ({'PASS' if ok else 'FAIL'}: target >= {target:.0%}"
                + (f" in < {VIT_SECONDS:.0f} s)" if model == "vit" else ")")
            )
        out[model] = row
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(out, f, indent=2)
        os.replace(args.json + ".tmp", args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The command line of ``main.py``: parse arguments into a RunConfig, run it, report.

Errors that are the user's to fix (bad arguments, unusable data, a world size the cluster
cannot host, a damaged checkpoint, a loss that diverged) end as ONE line on stderr and exit
code 2, never a traceback; found inside a Spark task, the line names the rank and the root
cause. Ctrl-C ends as one line, ``main.py: interrupted``, and exit code 130 (128 + SIGINT,
the shell's convention), once the ranks have stopped and Spark has shut down.
"""

from __future__ import annotations

import argparse
import json
import signal

from sparkgrad.engine.config import OPTIMIZERS, SCHEDULES, STRATEGIES, RunConfig, range_text
from sparkgrad.engine.console import print_error, silence_py4j
from sparkgrad.engine.model import MODELS
from sparkgrad.errors import ConfigError, SparkgradError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (argparse prints the usage block too)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print_error(f"{self.prog}: error: {message} (see --help)")
        self.exit(2)


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected widths like 256,256, found {text!r}") from None
    if not widths:
        raise argparse.ArgumentTypeError("expected at least one hidden width, e.g. 256,256")
    return widths


def _model_defaults_text() -> str:
    """``vit: --optimizer adamw, --lr 0.002, ...; gpt: ...`` for ``--help``."""
    return "; ".join(
        f"{name}: " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in spec.defaults.items())
        for name, spec in MODELS.items()
        if spec.defaults
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="main.py",
        description="Train a model (an MLP, CNN or ViT on MNIST, a GPT or LSTM language model "
        "on text, a seq2seq Transformer) with sparkgrad, in one process or across Spark tasks.",
        epilog="Examples: spark-submit main.py --strategy data --world-size 2 | "
        "python main.py --strategy single --data synthetic:20000",
    )
    p.add_argument(
        "--strategy",
        choices=STRATEGIES,
        default="data",
        help="single: one process; data: DataParallel (DDP); model: layers split over ranks; "
        "pipeline: micro-batched stages; tensor: Megatron column/row layers; zero1/zero2/zero3: "
        "sharded optimizer state / +gradients / +weights; hybrid: a --mesh of data x tensor; "
        "context: the sequence split over ranks, ring attention (--model gpt)",
    )
    p.add_argument(
        "--model",
        choices=tuple(MODELS),
        default="mlp",
        help="mlp: 784-hidden-10 (--hidden); cnn: PyTorch's MNIST example network (two conv "
        "layers, max-pool, dropout, two linear layers; trained with NLL loss); vit: MNIST as "
        "7x7 patches through a Transformer encoder; gpt: a character-level decoder-only "
        "Transformer; lstm-lm: the same task with an LSTM; seq2seq: an encoder-decoder "
        "Transformer that reverses digit strings. Options not given take the model's "
        "defaults: " + _model_defaults_text(),
    )
    p.add_argument(
        "--world-size",
        type=int,
        default=2,
        help="number of ranks (Spark tasks), >= 1, at most what --sim-topology holds",
    )
    p.add_argument("--epochs", type=int, default=3, help="passes over the training data (>= 1)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=64,
        help="GLOBAL batch of one step, split evenly across the data-parallel ranks (>= 1; "
        "each rank needs at least one full batch of the training split)",
    )
    p.add_argument("--lr", type=float, default=0.05, help=f"learning rate, in {range_text('lr')}")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="optimizer (torch maths)")
    p.add_argument(
        "--momentum",
        type=float,
        default=0.9,
        help=f"SGD (and RMSprop) momentum, in {range_text('momentum')}",
    )
    p.add_argument(
        "--gamma",
        type=float,
        default=None,
        help=f"StepLR: multiply the learning rate by GAMMA, in {range_text('gamma')}, after "
        "every epoch (as in PyTorch's MNIST example: --model cnn --optimizer adadelta --lr 1.0 "
        "--gamma 0.7)",
    )
    p.add_argument(
        "--hidden", type=_hidden, default=(256, 256), help="mlp: hidden widths, e.g. 256,256"
    )
    p.add_argument("--d-model", type=int, default=64, help="vit/gpt/lstm-lm/seq2seq: width")
    p.add_argument("--heads", type=int, default=4, help="attention heads (divide --d-model)")
    p.add_argument("--layers", type=int, default=2, help="Transformer (or LSTM) layers")
    p.add_argument(
        "--context", type=int, default=64, help="gpt/lstm-lm: characters per training window"
    )
    p.add_argument(
        "--dropout", type=float, default=0.0, help=f"sequence models, in {range_text('dropout')}"
    )
    p.add_argument(
        "--tie-weights",
        action="store_true",
        help="gpt/lstm-lm: the output layer reuses the token embedding's matrix",
    )
    # -- activation checkpointing (issue 19) ----------------------------------------------------
    p.add_argument(
        "--recompute",
        choices=("none", "blocks", "selective"),
        default="none",
        help="activation checkpointing: none (keep every activation); blocks (gpt/vit/seq2seq/"
        "mlp: keep each block's input, recompute the block in backward); selective (gpt/vit/"
        "seq2seq: recompute only attention's softmax and dropout, Megatron's selective)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="digits (mlp, cnn, vit): mnist-5k (embedded, default) | DIR with IDX/CSV files | "
        "file://, hdfs://, s3a:// URI | synthetic:N. text (gpt, lstm-lm): pydoc-topics (the "
        "Python reference topics every installation ships, default) | a UTF-8 text file | a "
        "URI. seq2seq: reverse:N (N digit strings to reverse, default reverse:20000)",
    )
    p.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="cpu (NumPy) or cuda (CuPy)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of weights, shuffling and dropout (>= 0)"
    )
    p.add_argument("--export", metavar="PATH", help="write the trained model as safetensors here")
    p.add_argument("--checkpoint-dir", metavar="DIR", help="write checkpoints here (path or URI)")
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=20,
        metavar="K",
        help="steps between checkpoints (>= 1)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest sound checkpoint in --checkpoint-dir. From the "
        "checkpoint: the weights, the optimizer's buffers (momentum, Adam's moments), the "
        "step, the epoch and the position in it, the metrics so far and the random state. "
        "From the command line: everything else; --model, --hidden, --optimizer, --lr, "
        "--momentum, --gamma, --batch-size and --seed must equal the checkpoint's (a "
        "conflict is an error, nothing is silently overridden), while --epochs (at least "
        "the checkpoint's epoch), --strategy, --world-size, --data, --checkpoint-every and "
        "the outputs may change. A damaged checkpoint is skipped for the one before; when "
        "none is sound the run stops with an error",
    )
    p.add_argument("--metrics-out", metavar="PATH", help="write per-epoch metrics as JSON here")
    p.add_argument(
        "--sim-topology",
        default="2x8-h100",
        help="modelled cluster the run's collectives are priced on afterwards (it never "
        "changes what runs), NODESxRANKS-SYSTEM (systems h100, pcie, loopback), e.g. 1x8-h100, "
        "2x8-h100; it must hold --world-size",
    )
    p.add_argument(
        "--fail-at-step",
        type=int,
        metavar="K",
        help="(teaching/tests) crash a rank at step K (>= 1)",
    )
    p.add_argument(
        "--fail-rank", type=int, default=0, metavar="R", help="which rank --fail-at-step crashes"
    )
    p.add_argument(
        "--micro-batches",
        type=int,
        default=4,
        metavar="M",
        help="pipeline: micro-batches per step (>= 1, divides --batch-size)",
    )
    p.add_argument("--schedule", choices=SCHEDULES, default="1f1b", help="pipeline schedule")
    p.add_argument(
        "--split",
        type=_hidden,
        default=None,
        metavar="N,N",
        help=(
            "model/pipeline: Linear layers per rank, e.g. 2,1 (--model gpt: units per rank, "
            "the embedding, each block and the head one unit each); default: balanced by "
            "parameters"
        ),
    )
    p.add_argument(
        "--mesh",
        default="dp=2,tp=2",
        help="hybrid: ranks per axis, e.g. dp=2,tp=2 (product = world)",
    )
    # -- sequence parallelism (issue 18): sparkgrad/parallel/tensor/transformer.py ------------
    p.add_argument(
        "--sequence-parallel",
        action="store_true",
        help="tensor/hybrid with tp > 1, --model gpt: LayerNorm and dropout regions hold "
        "--context / tp positions (all-gather before, reduce-scatter after the split layers)",
    )
    p.add_argument(
        "--allow-nonfinite-loss",
        action="store_true",
        help="keep training when the loss becomes inf or NaN (by default the run stops with "
        "an error naming the step)",
    )
    # mixed precision (issue 19): see sparkgrad/engine/precision.py
    p.add_argument(
        "--precision",
        choices=("fp32", "fp16", "bf16"),
        default="fp32",
        help="fp16: autocast + loss scaling (GradScaler); bf16: autocast only; fp32: neither. "
        "--strategy zero1|zero2|zero3 then hold 16-bit params and grads and fp32 master "
        "weights of their shard (the ZeRO paper's precision)",
    )
    p.add_argument(
        "--init-scale",
        type=float,
        default=65536.0,
        help=f"--precision fp16: the GradScaler's first loss scale, in {range_text('init_scale')}",
    )
    p.add_argument(
        "--growth-interval",
        type=int,
        default=2000,
        help="--precision fp16: double the loss scale after this many steps without an "
        "inf/NaN gradient, >= 1",
    )
    # -- issue 20: asynchronous training through a parameter server on the driver --------
    p.add_argument(
        "--mode",
        default="sync",
        help="sync: the synchronous --strategy (default); async: a parameter server on the "
        "driver applies each worker's gradient as it arrives; hogwild: lock-free updates of "
        "shared weights; ssp: async, but no worker runs more than --staleness steps ahead",
    )
    p.add_argument(
        "--staleness",
        type=int,
        default=None,
        metavar="S",
        help="--mode ssp: how many steps (clocks) a worker may run ahead of the slowest, >= 0",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    # -- profiler (issue 19): per-rank and merged Trace Event JSON ---------------------------
    p.add_argument(
        "--profile",
        metavar="DIR",
        help="profile the training (sg.profiler): write trace.rank<R>.json per rank and "
        "trace.merged.json (all ranks, send/recv arrows, the predicted timeline on "
        "--sim-topology) into this local directory; open them in ui.perfetto.dev",
    )
    return p


class _Unset:
    """A default the command line did not override (so a model's own default may apply)."""

    def __init__(self, value: object) -> None:
        self.value = value


def parse_config(argv: list[str] | None = None) -> RunConfig:
    """Arguments → validated RunConfig (exits 2 with one line on a usage error).

    An option the command line leaves out takes the chosen model's default
    (``ModelSpec.defaults``, e.g. AdamW for ``--model vit``), else the parser's.
    """
    parser = build_parser()
    for action in parser._actions:
        if action.dest != "help":
            action.default = _Unset(action.default)
    args = vars(parser.parse_args(argv))
    model = args["model"].value if isinstance(args["model"], _Unset) else args["model"]
    defaults = MODELS[model].defaults
    for name, value in args.items():
        if isinstance(value, _Unset):
            args[name] = defaults.get(name, value.value)
    return RunConfig(**args).validate()


def _write_json(path: str, payload: dict) -> None:
    from sparkgrad.export.safetensors_io import write_atomic

    try:
        write_atomic(path, json.dumps(payload, indent=2).encode())
    except OSError as exc:
        raise ConfigError(f"--metrics-out {path}: cannot write ({exc.strerror or exc})") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``main.py`` and of the ``sparkgrad-train`` console script."""
    from sparkgrad.engine.run import run

    silence_py4j()
    try:
        config = parse_config(argv)
        result = run(config)
        if config.metrics_out:
            _write_json(config.metrics_out, result.to_dict())
    except SparkgradError as exc:
        print_error(f"main.py: error: {exc}")
        return 2
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # already stopping: no second trace
        print_error("main.py: interrupted")
        from sparkgrad.engine.spark_session import stop_quietly

        stop_quietly()
        return 130
    for line in result.rank_lines() + result.memory_lines():
        print(line)
    if result.precision.get("precision", "fp32") != "fp32":  # mixed precision (issue 19)
        print(result.precision_line())
    print(result.summary_line())
    return 0

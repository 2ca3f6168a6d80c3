"""``python -m sparkgrad.simulate``: predict a GPT training step on a modelled cluster.

    python -m sparkgrad.simulate --model gpt --d-model 4096 --layers 32 --heads 32 \\
        --context 2048 --vocab 50257 --mesh dp=8,tp=8,pp=4 --cluster 32x8-h100 \\
        --global-batch 512 --micro-batches 8 --precision bf16

prints step time, tokens/s, MFU, per-rank memory, each collective's algorithm and protocol
with the reason, and the time split per pipeline stage. Nothing is allocated: shapes only.
``--trace FILE`` writes the predicted timeline as a Chrome trace; ``--validate`` prints the
table of published results (docs/simulator.md) instead, ``--validate-local`` the predicted
vs measured step of every strategy on this machine (:mod:`.local`). A bad argument ends as
one line on stderr and exit code 2, as ``main.py`` does.
"""

from __future__ import annotations

import argparse
import sys

from sparkgrad.errors import SparkgradError
from sparkgrad.simulate.cluster import Cluster
from sparkgrad.simulate.predict import Prediction, StepConfig, simulate_step
from sparkgrad.simulate.workload import PRECISIONS, GPTShape, Mesh

PROG = "python -m sparkgrad.simulate"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        self.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Predict one training step of a GPT on a modelled "
        "GPU cluster (shapes only, nothing allocated).",
    )
    p.add_argument("--model", choices=("gpt",), default="gpt", help="the model family (gpt)")
    p.add_argument("--d-model", type=int, default=4096, help="width h (default 4096)")
    p.add_argument("--layers", type=int, default=32, help="transformer blocks (default 32)")
    p.add_argument("--heads", type=int, default=32, help="attention heads (default 32)")
    p.add_argument("--context", type=int, default=2048, help="sequence length (default 2048)")
    p.add_argument("--vocab", type=int, default=50257, help="vocabulary size (default 50257)")
    p.add_argument(
        "--mesh",
        default="dp=8",
        help="e.g. dp=8,tp=8,pp=4 (cp= too); dp*pp*tp*cp must equal the cluster's GPUs",
    )
    p.add_argument(
        "--cluster",
        default="1x8-h100",
        help="NODESxGPUS-SYSTEM, SYSTEM in h100, h200, a100, cpu (default 1x8-h100)",
    )
    p.add_argument("--global-batch", type=int, default=64, help="sequences per step")
    p.add_argument(
        "--micro-batches",
        type=int,
        default=1,
        help="micro-batches per step on each replica (pipeline / accumulation)",
    )
    p.add_argument("--precision", choices=tuple(PRECISIONS), default="bf16")
    p.add_argument(
        "--zero",
        type=int,
        choices=(0, 1, 2, 3),
        default=0,
        help="0: DDP all-reduce; 1/2/3: ZeRO stage over the dp ranks",
    )
    p.add_argument("--schedule", choices=("1f1b", "gpipe"), default="1f1b")
    p.add_argument("--recompute", choices=("none", "full"), default="none")
    p.add_argument("--bucket-mb", type=float, default=25.0, help="DDP bucket size (MiB)")
    p.add_argument("--trace", metavar="FILE", help="write the predicted timeline (Chrome trace)")
    p.add_argument("--json", metavar="FILE", help="write the numbers as JSON")
    p.add_argument(
        "--validate",
        action="store_true",
        help="print the published-results table (docs/simulator.md) and exit",
    )
    p.add_argument(
        "--validate-local",
        action="store_true",
        help="predict and measure every strategy's MLP step on this machine (calibrated "
        "on the measured ranks, in the same seconds) and print the table (about a minute)",
    )
    p.add_argument("--repeats", type=int, default=3, help="measured runs per strategy (local)")
    p.add_argument(
        "--world-size",
        type=int,
        default=None,
        help="--validate-local's ranks per multi-rank strategy (default: one per core, at least 2)",
    )
    p.add_argument(
        "--transport",
        choices=("threads", "tcp"),
        default="threads",
        help="--validate-local's ranks: threads of one process, or a process each over tcp",
    )
    return p


def config_from(args: argparse.Namespace) -> StepConfig:
    shape = GPTShape(args.d_model, args.layers, args.heads, args.context, args.vocab)
    return StepConfig(
        shape,
        Mesh.parse(args.mesh),
        Cluster.parse(args.cluster),
        args.global_batch,
        args.micro_batches,
        args.precision,
        args.zero,
        args.schedule,
        args.recompute,
        args.bucket_mb,
    )


def _count(n: float) -> str:
    """``6.86 B``, ``120.5 M``, ``33.6 k``."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}"


def report(pred: Prediction) -> str:
    """The prediction as readable lines."""
    cfg = pred.config
    sh, m, dev, topo = cfg.shape, cfg.mesh, cfg.cluster.device, cfg.cluster.topology
    dtype = PRECISIONS[cfg.precision][0]
    lines = [
        f"gpt d_model={sh.d_model} layers={sh.layers} heads={sh.heads} context={sh.context} "
        f"vocab={sh.vocab}: {_count(sh.parameters)} parameters",
        f"cluster {cfg.cluster.spec}: {cfg.cluster.world} x {dev.name} "
        f"({dev.peak(dtype) / 1e12:.1f} "
        f"TFLOP/s {dtype}, {dev.memory_bandwidth / 1e12:.2f} TB/s); {topo.intra.name} inside a "
        f"node, {topo.inter.name} across",
        f"mesh {m.describe()}, zero={cfg.zero}, {cfg.schedule}, recompute={cfg.recompute}; "
        f"global batch {cfg.global_batch} = dp {m.dp} x {cfg.micro_batches} micro-batches x "
        f"{cfg.micro_batch_size} sequences",
        "",
        f"  step time        {pred.step_seconds:12.4f} s",
        f"  throughput       {pred.tokens_per_second:12,.0f} tokens/s",
        f"  MFU              {pred.mfu * 100:12.1f} %   (model FLOPs / {dtype} peak)",
        f"  per GPU          {pred.megatron_tflops / 1e12:12.1f} TFLOP/s (Megatron-LM's eq. 3)",
        "",
        f"  {'memory per rank (GB)':22}{'weights':>9}{'grads':>9}{'optim':>9}{'activ':>9}"
        f"{'total':>9}  fits {dev.memory_bytes / 1e9:.0f} GB?",
    ]
    for s, mem in enumerate(pred.memory):
        lines.append(
            f"  {'stage ' + str(s):22}{mem.weights / 1e9:9.2f}{mem.gradients / 1e9:9.2f}"
            f"{mem.optimizer / 1e9:9.2f}{mem.activations / 1e9:9.2f}{mem.total / 1e9:9.2f}  "
            f"{'yes' if mem.total <= dev.memory_bytes else 'NO'}"
        )
    lines += ["", f"  {'collective':48}{'algo/proto':>14}{'time':>12}  why"]
    for name, c in pred.comms.items():
        lines.append(
            f"  {name:48}{c.algorithm + '/' + c.protocol:>14}{c.seconds * 1e3:10.3f} ms  {c.reason}"
        )
    lines += ["", f"  {'per stage':12}{'compute':>12}{'exposed comm + idle':>22}"]
    for s, busy in enumerate(pred.compute_seconds):
        lines.append(f"  {'stage ' + str(s):12}{busy:11.4f}s{pred.step_seconds - busy:21.4f}s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.validate:
            from sparkgrad.simulate.validation import markdown_table

            print(markdown_table())
            return 0
        if args.validate_local:
            from sparkgrad.simulate.local import markdown as local_table
            from sparkgrad.simulate.local import validate_local

            rows = validate_local(
                world=args.world_size, repeats=args.repeats, transport=args.transport
            )
            print(local_table(rows))
            return 0
        pred = simulate_step(config_from(args))
        print(report(pred))
        if args.trace:
            from sparkgrad.simulate.trace import export_chrome_trace

            export_chrome_trace(pred.events, pred.config.mesh.pp, args.trace)
            print(f"\npredicted timeline written to {args.trace} (chrome://tracing, Perfetto)")
        if args.json:
            from sparkgrad.autodiff.profiler.trace import write_json_atomic

            write_json_atomic(
                args.json,
                {
                    "step_seconds": pred.step_seconds,
                    "tokens_per_second": pred.tokens_per_second,
                    "mfu": pred.mfu,
                    "memory_bytes": [m.total for m in pred.memory],
                    "comms": {
                        k: [c.algorithm, c.protocol, c.seconds, c.reason]
                        for k, c in pred.comms.items()
                    },
                },
            )
    except SparkgradError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: error: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0

"""``RunConfig``: every knob of a training run, checked once, before anything starts.

The command line (:mod:`sparkgrad.engine.cli`) fills it; notebooks can build one directly.
``batch_size`` is the *global* batch of one optimizer step: under data parallelism each of
the ``world_size`` ranks takes ``batch_size / world_size`` samples, so the same config does
the same maths under every strategy and world size.

Strategy-specific knobs (``micro_batches`` and ``schedule`` for the pipeline, ``split`` for
model and pipeline parallelism, ``mesh`` for hybrid) are checked on the driver too, so a
bad combination fails in a second instead of inside every Spark task -- by the strategy
class itself (``check_config``, ``batch_ways``, ``group_sizes``, ``options_from``): the
rules of each strategy live with it, this file only asks. So are the
numbers: a learning rate of ``inf`` or ``nan`` trains a model of NaNs and would still exit 0,
so every float must be finite and in its range (:data:`RANGES`, also shown by ``--help``),
and the modelled cluster (``--sim-topology``) must hold the world size and every
sub-group the strategy makes.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

from sparkgrad.autodiff.amp.precision_names import PRECISIONS
from sparkgrad.engine.model import MODELS, OPTIMIZERS
from sparkgrad.errors import ConfigError
from sparkgrad.parallel.registry import STRATEGIES, strategy_class

SCHEDULES = ("1f1b", "gpipe")  # the pipeline's (sparkgrad.parallel.pipeline.schedules)
# issue 20: how the workers meet: sync (the --strategy), or through the parameter server
MODES = ("sync", "async", "hogwild", "ssp")

#: The range of every float option, as ``--help`` shows it: (low, high, low_open, high_open).
RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "lr": (0.0, math.inf, True, True),  # (0, inf): finite and positive
    "momentum": (0.0, 1.0, False, True),  # [0, 1): a momentum of 1 never forgets
    "gamma": (0.0, 1.0, True, False),  # (0, 1]: StepLR lr *= gamma each epoch
    "dropout": (0.0, 1.0, False, True),  # [0, 1): the sequence models' dropout probability
    # (0, float32's largest]: the fp16 GradScaler's first scale (a float32 in the scaler)
    "init_scale": (0.0, 3.4028234663852886e38, True, False),
}


def range_text(name: str) -> str:
    """``"(0, 1]"``-style text of a float option's range (used in ``--help`` and errors)."""
    low, high, low_open, high_open = RANGES[name]
    hi = "inf" if math.isinf(high) else f"{high:g}"
    return f"{'(' if low_open else '['}{low:g}, {hi}{')' if high_open else ']'}"


@dataclass
class RunConfig:
    """One training run (see ``python main.py --help`` for each field's meaning)."""

    strategy: str = "data"
    model: str = "mlp"
    world_size: int = 2
    epochs: int = 3
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    gamma: float | None = None
    hidden: tuple[int, ...] = (256, 256)
    # the sequence models (vit, gpt, lstm-lm, seq2seq): width, heads, depth, window, dropout
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    context: int = 64
    dropout: float = 0.0
    tie_weights: bool = False
    data: str | None = None  # None: the model's task's default (mnist-5k, pydoc-topics, ...)
    device: str = "cpu"
    seed: int = 0
    export: str | None = None
    checkpoint_dir: str | None = None
    checkpoint_every: int = 20
    resume: bool = False
    metrics_out: str | None = None
    sim_topology: str = "2x8-h100"
    fail_at_step: int | None = None
    fail_rank: int = 0
    micro_batches: int = 4
    schedule: str = "1f1b"
    split: tuple[int, ...] | None = None
    mesh: str = "dp=2,tp=2"
    progress: bool = True
    # a loss that turns inf/NaN during training stops the run with an error naming the step,
    # unless this is set (``--allow-nonfinite-loss``); the check lives in the trainer
    allow_nonfinite_loss: bool = False
    # mixed precision (issue 19, sparkgrad/engine/precision.py): fp32, fp16 (autocast + a
    # GradScaler) or bf16 (autocast only); ZeRO holds 16-bit params and grads + fp32 masters.
    # The fp16 GradScaler's init_scale and growth_interval (PyTorch's names and defaults)
    precision: str = "fp32"
    init_scale: float = 65536.0
    growth_interval: int = 2000
    # -- activation checkpointing (issue 19): none | blocks | selective, for the models whose
    # ModelSpec.options list "recompute" (sparkgrad.models.recompute); checked in
    # _validate_model_options
    recompute: str = "none"
    # -- profiler (issue 19): ``--profile DIR`` writes per-rank and merged traces there
    profile: str | None = None
    # -- issue 20, asynchronous training (sparkgrad/parallel/asynchronous/): --mode sync keeps
    # the synchronous --strategy; async, hogwild and ssp train through a parameter server on
    # the driver; --staleness S (ssp only) bounds how far a worker may run ahead of the slowest
    mode: str = "sync"
    staleness: int | None = None
    # -- issue 18, sequence parallelism (sparkgrad/parallel/tensor/transformer.py): with a
    # tensor-parallel strategy (tensor, hybrid) of tp > 1; checked in _validate_sequence_parallel
    sequence_parallel: bool = False
    extra: dict = field(default_factory=dict)

    def validate(self) -> RunConfig:
        """Raise ConfigError naming the first bad field; return self when all is well."""
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"--strategy must be one of {', '.join(STRATEGIES)}, found {self.strategy!r}"
            )
        if self.model not in MODELS:
            raise ConfigError(f"--model must be one of {', '.join(MODELS)}, found {self.model!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"--optimizer must be one of {', '.join(OPTIMIZERS)}, found {self.optimizer!r}"
            )
        if self.data is None:
            self.data = MODELS[self.model].task.default_data
        self._validate_model_options()
        for name in (
            "world_size", "epochs", "batch_size", "checkpoint_every", "micro_batches",
            "growth_interval",
        ):  # fmt: skip
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be >= 1, found {getattr(self, name)}"
                )
        if self.strategy == "single" and self.world_size != 1:
            self.world_size = 1
        if self.batch_size % self.data_parallel_size:
            raise ConfigError(
                f"--batch-size {self.batch_size} is the global batch and must divide evenly over "
                f"{self.data_parallel_size} data-parallel ranks (--world-size {self.world_size}, "
                f"--strategy {self.strategy})"
            )
        self._validate_strategy()
        self._validate_sequence_parallel()  # issue 18
        self._validate_mode()
        self._validate_numbers()
        self._validate_topology()
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(
                f"--hidden needs positive widths such as 256,256, found {self.hidden}"
            )
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"--device must be cpu or cuda, found {self.device!r}")
        if self.precision not in PRECISIONS:  # mixed precision (issue 19)
            raise ConfigError(f"--precision must be fp32, fp16 or bf16, found {self.precision!r}")
        given = [  # the loss scaler's flags, changed from their defaults
            f"--{name.replace('_', '-')}"
            for name in ("init_scale", "growth_interval")
            if getattr(self, name) != getattr(RunConfig, name)
        ]
        if given and self.precision != "fp16":  # they would do nothing: say so
            raise ConfigError(
                f"{' and '.join(given)} set the fp16 loss scaler; --precision {self.precision} "
                "has none (bf16 and fp32 need no loss scaling): add --precision fp16 or drop them"
            )
        if self.precision == "bf16" and self.device == "cuda":  # found here, before any task
            raise ConfigError(
                "--precision bf16 --device cuda: CuPy has no bfloat16 arrays, so bf16 runs only "
                "on the CPU (through ml_dtypes); use --precision fp16 on cuda"
            )
        if self.profile is not None and ("://" in self.profile or not self.profile.strip()):
            raise ConfigError(  # profiler (issue 19): every rank writes its own trace there
                f"--profile needs a local directory (every rank writes its trace there), "
                f"found {self.profile!r}"
            )
        if self.resume and not self.checkpoint_dir:
            raise ConfigError("--resume needs --checkpoint-dir (where to look for checkpoints)")
        if self.fail_at_step is not None and self.fail_at_step < 1:
            raise ConfigError(
                f"--fail-at-step must be >= 1 (a step number), found {self.fail_at_step}"
            )
        if self.fail_at_step is not None and not 0 <= self.fail_rank < self.world_size:
            raise ConfigError(
                f"--fail-rank must be in 0..{self.world_size - 1}, found {self.fail_rank}"
            )
        return self

    @property
    def uses_parameter_server(self) -> bool:
        """issue 20: train through the parameter server (async, hogwild, ssp; and sync when
        ``extra["parameter_server"]`` asks for the server's bulk-synchronous mode)."""
        return self.mode != "sync" or bool(self.extra.get("parameter_server"))

    def _validate_mode(self) -> None:
        """issue 20: a known mode; --staleness >= 0 and with --mode ssp only."""
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, found {self.mode!r}")
        if self.staleness is not None and self.mode != "ssp":
            raise ConfigError(
                f"--staleness bounds stale-synchronous training and needs --mode ssp, found "
                f"--mode {self.mode} (drop --staleness, or use --mode ssp)"
            )
        if self.mode == "ssp" and self.staleness is None:
            raise ConfigError("--mode ssp needs --staleness S (0 = sync, larger = more async)")
        if self.staleness is not None and self.staleness < 0:
            raise ConfigError(f"--staleness must be >= 0 (clocks ahead), found {self.staleness}")
        if not self.uses_parameter_server:
            return
        if self.strategy != "data":
            raise ConfigError(
                f"--mode {self.mode} trains data-parallel workers through a parameter server; "
                f"--strategy {self.strategy} cannot be combined with it (use --strategy data)"
            )
        from sparkgrad.dataset.sources import is_uri

        uri = self.data if is_uri(str(self.data)) else None
        for name, value in (
            ("--checkpoint-dir", self.checkpoint_dir),
            ("--gamma", self.gamma),
            ("--data URI", uri),
            (f"--precision {self.precision}", None if self.precision == "fp32" else 1),
            ("--profile", self.profile),
        ):
            if value is not None:
                raise ConfigError(
                    f"{name} is not supported with --mode {self.mode} yet (the optimizer "
                    "lives on the parameter server); use --mode sync"
                )

    def _validate_model_options(self) -> None:
        """Sizes positive, heads dividing the width, and data that fits the model's task."""
        spec = MODELS[self.model]
        for name in ("d_model", "heads", "layers", "context"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be >= 1, found {getattr(self, name)}"
                )
        if "heads" in spec.options and self.d_model % self.heads:
            raise ConfigError(
                f"--d-model {self.d_model} must be divisible by --heads {self.heads} "
                f"(embed_dim must be divisible by num_heads: each head gets d_model / heads)"
            )
        self._validate_recompute(spec)
        kind = spec.task.name
        data = str(self.data)
        is_text, is_reverse = data == "pydoc-topics", data.startswith("reverse:")
        if kind == "digits" and (is_text or is_reverse):
            raise ConfigError(
                f"--model {self.model} learns MNIST digits; --data {data} is for "
                f"{'--model gpt or lstm-lm' if is_text else '--model seq2seq'}"
            )
        if kind == "text" and (data == "mnist-5k" or data.startswith(("synthetic:", "reverse:"))):
            raise ConfigError(
                f"--model {self.model} learns a text: give --data pydoc-topics (the default), "
                f"a UTF-8 text file or a URI, found {data}"
            )
        if kind == "reverse" and not is_reverse:
            raise ConfigError(
                f"--model {self.model} learns to reverse digit strings: give --data reverse:N "
                f"(default reverse:20000), found {data}"
            )

    def _validate_recompute(self, spec: object) -> None:
        """--recompute: a known mode, on a model that can recompute (issue 19)."""
        from sparkgrad.models.recompute import RECOMPUTE_MODES

        if self.recompute not in RECOMPUTE_MODES:
            raise ConfigError(
                f"--recompute must be one of {', '.join(RECOMPUTE_MODES)}, found {self.recompute!r}"
            )
        if self.recompute == "none":
            return
        if "recompute" not in spec.options:
            raise ConfigError(
                f"--recompute {self.recompute} is for gpt, vit, seq2seq and mlp (blocks only); "
                f"--model {self.model} has no blocks to recompute"
            )
        if self.recompute == "selective" and self.model == "mlp":
            raise ConfigError(
                "--recompute selective recomputes attention's softmax and dropout; --model mlp "
                "has no attention: use --recompute blocks"
            )
        if self.model == "mlp" and self.strategy_class.cuts_layers:
            raise ConfigError(
                f"--recompute with --strategy {self.strategy}: the layer-splitting strategies "
                "rebuild the MLP from its Linear layers; use data, ddp, zero or single"
            )

    def _validate_numbers(self) -> None:
        """Every float finite and in :data:`RANGES`; the seed a non-negative integer."""
        for name, (low, high, low_open, high_open) in RANGES.items():
            value = getattr(self, name)
            if value is None:  # --gamma is optional
                continue
            inside = (value > low if low_open else value >= low) and (
                value < high if high_open else value <= high
            )
            if not (isinstance(value, (int, float)) and math.isfinite(value) and inside):
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be in {range_text(name)}, a finite "
                    f"number, found {value}"
                )
        if not 0 <= self.seed < 2**63:
            raise ConfigError(f"--seed must be an integer in 0..2**63-1, found {self.seed}")

    @property
    def strategy_class(self) -> type:
        """The class behind ``--strategy`` (it knows its own rules; see the module doc)."""
        return strategy_class(self.strategy)[0]

    def group_sizes(self) -> list[int]:
        """The sizes of the process groups the strategy communicates in (the world first)."""
        return self.strategy_class.group_sizes(self)

    def _validate_topology(self) -> None:
        """``--sim-topology`` parses, and holds the world and every sub-group of the run."""
        from sparkgrad.comms.model.topology import Topology

        try:
            topology = Topology.parse(self.sim_topology)
        except ConfigError as exc:
            raise ConfigError(f"--sim-topology: {exc}") from None
        if self.strategy == "single":
            return
        suffix = re.sub(r"^\d+x\d+", "", "".join(self.sim_topology.split()).lower())
        rpn = topology.ranks_per_node
        for n in self.group_sizes():
            try:
                topology.split(n)
            except ConfigError as exc:
                if n != self.world_size:
                    raise ConfigError(
                        f"--mesh {self.mesh}: its groups of {n} ranks do not fit --sim-topology "
                        f"{self.sim_topology} ({topology.nodes} nodes x {rpn} ranks): {exc}; "
                        f"choose axes that fit within a node or fill whole nodes"
                    ) from None
                fits = f"{n // rpn}x{rpn}{suffix}" if n % rpn == 0 else f"1x{n}{suffix}"
                raise ConfigError(
                    f"--world-size {n} does not fit --sim-topology {self.sim_topology} "
                    f"({topology.nodes} nodes x {rpn} ranks): {exc}; pass a --sim-topology "
                    f"that holds it, e.g. {fits}"
                ) from None

    def _validate_strategy(self) -> None:
        cls = self.strategy_class
        if cls.models is not None and self.model not in cls.models:
            splits = [n for n in STRATEGIES if strategy_class(n)[0].models is None]
            raise ConfigError(
                f"--strategy {self.strategy} knows how to split --model "
                f"{' or '.join(cls.models)} and cannot split --model {self.model}; "
                f"use --strategy {', '.join(splits)}"
            )
        cls.check_config(self)

    def _validate_sequence_parallel(self) -> None:
        """issue 18: --sequence-parallel splits the sequence over the tensor-parallel ranks."""
        if not self.sequence_parallel:
            return
        ways = getattr(self.strategy_class, "tensor_ways", None)
        if ways is None:
            raise ConfigError(
                f"--sequence-parallel splits the sequence over the tensor-parallel ranks: "
                f"expected --strategy tensor or hybrid, found --strategy {self.strategy}"
            )
        if ways(self) < 2:
            raise ConfigError(
                f"--sequence-parallel needs more than one tensor-parallel rank, found tp="
                f"{ways(self)} (--strategy {self.strategy}, --world-size {self.world_size})"
            )

    @property
    def data_parallel_size(self) -> int:
        """How many ways the global batch is split (1 for model, pipeline, tensor)."""
        return self.strategy_class.batch_ways(self)

    @property
    def per_rank_batch(self) -> int:
        return self.batch_size // self.data_parallel_size

    def strategy_options(self) -> dict:
        """The keyword arguments ``make_strategy`` passes to this strategy's class."""
        return self.strategy_class.options_from(self)

    def to_dict(self) -> dict:
        """A JSON-friendly copy (stored in checkpoints and metrics files)."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        d["split"] = list(self.split) if self.split is not None else None
        return d

"""``RunConfig``: every knob of a training run, checked once, before anything starts.

The command line (:mod:`sparkgrad.engine.cli`) fills it; notebooks can build one directly.
``batch_size`` is the *global* batch of one optimizer step: under data parallelism each of
the ``world_size`` ranks takes ``batch_size / world_size`` samples, so the same config does
the same maths under every strategy and world size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from sparkgrad.errors import ConfigError

STRATEGIES = ("single", "data")
OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass
class RunConfig:
    """One training run (see ``python main.py --help`` for each field's meaning)."""

    strategy: str = "data"
    world_size: int = 2
    epochs: int = 3
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    hidden: tuple[int, ...] = (256, 256)
    data: str = "mnist-5k"
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
    progress: bool = True
    extra: dict = field(default_factory=dict)

    def validate(self) -> RunConfig:
        """Raise ConfigError naming the first bad field; return self when all is well."""
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"--strategy must be one of {', '.join(STRATEGIES)}, found {self.strategy!r}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"--optimizer must be one of {', '.join(OPTIMIZERS)}, found {self.optimizer!r}"
            )
        for name in ("world_size", "epochs", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be >= 1, found {getattr(self, name)}"
                )
        if self.strategy == "single" and self.world_size != 1:
            self.world_size = 1
        if self.batch_size % self.world_size:
            raise ConfigError(
                f"--batch-size {self.batch_size} is the global batch and must divide evenly over "
                f"--world-size {self.world_size} ranks"
            )
        if self.lr <= 0:
            raise ConfigError(f"--lr must be positive, found {self.lr}")
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(
                f"--hidden needs positive widths such as 256,256, found {self.hidden}"
            )
        if self.device not in ("cpu", "cuda"):
            raise ConfigError(f"--device must be cpu or cuda, found {self.device!r}")
        if self.resume and not self.checkpoint_dir:
            raise ConfigError("--resume needs --checkpoint-dir (where to look for checkpoints)")
        if self.fail_at_step is not None and not 0 <= self.fail_rank < self.world_size:
            raise ConfigError(
                f"--fail-rank must be in 0..{self.world_size - 1}, found {self.fail_rank}"
            )
        return self

    @property
    def per_rank_batch(self) -> int:
        return self.batch_size // self.world_size

    def to_dict(self) -> dict:
        """A JSON-friendly copy (stored in checkpoints and metrics files)."""
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

"""How big each part of the report runs: the full report, or a tiny one for tests and CI.

:meth:`ReportSizes.full` is what the committed report uses (minutes on a quiet machine);
:meth:`ReportSizes.quick` shrinks every part to seconds — the numbers it gives are only
good for checking that the report is complete, never for comparing engines.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportSizes:
    """Model shapes, batches, repeats and data sizes of every section."""

    models: tuple[tuple[int, ...], ...] = ((256, 256), (1024, 1024, 1024))
    batches: tuple[int, ...] = (32, 128, 512, 4096)
    optimizers: tuple[str, ...] = ("sgd", "adam")
    repeats: int = 7  # interleaved rounds per step-time case (median and IQR over them)
    steps: int = 30  # steps per round
    pause_s: float | None = None  # None: step.py's own pause between engines
    train_data: str = "mnist-5k"
    train_limit: int | None = None  # None: every training sample
    test_limit: int | None = None
    train_epochs: int = 5
    train_batch: int = 64
    memory_batch: int = 128
    memory_steps: int = 5
    collective_world_sizes: tuple[int, ...] = (2, 4)
    collective_min: int = 8
    collective_max: int = 64 << 20
    collective_factor: int = 4
    collective_iters: int = 20  # rounds: with 10, noise pushed a size past 15% now and then
    spark_world_sizes: tuple[int, ...] = (1, 2, 4)
    spark_epochs: int = 3
    spark_data: str = "mnist-5k"
    spark_hidden: tuple[int, ...] = (256, 256)
    scaling_worlds: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    scaling_topologies: tuple[str, ...] = ("8x8-h100", "8x8-pcie")
    scaling_batch: int = 128  # per-rank batch of the modelled weak-scaling run
    quick: bool = False

    @classmethod
    def full(cls, cores: int) -> ReportSizes:
        """The committed report; Spark and collective world sizes capped at ``cores``."""
        base = cls()
        spark = tuple(w for w in base.spark_world_sizes if w <= max(cores, 2))
        coll = tuple(w for w in base.collective_world_sizes if w <= max(cores, 2))
        return cls(spark_world_sizes=spark, collective_world_sizes=coll)

    @classmethod
    def quick_sizes(cls) -> ReportSizes:
        """Seconds, not minutes: tiny models, one short round, 2 ranks."""
        return cls(
            models=((32, 32), (64, 64, 64)),
            batches=(32, 64),
            repeats=3,
            steps=2,
            pause_s=0.0,
            train_limit=512,
            test_limit=256,
            train_epochs=2,
            train_batch=64,
            memory_batch=32,
            memory_steps=2,
            collective_world_sizes=(2,),
            collective_min=1024,
            collective_max=256 << 10,
            collective_factor=16,
            collective_iters=3,
            spark_world_sizes=(1, 2),
            spark_epochs=1,
            spark_data="synthetic:256",
            spark_hidden=(32, 32),
            scaling_batch=32,
            quick=True,
        )

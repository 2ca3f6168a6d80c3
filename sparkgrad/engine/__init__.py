"""Trainer, SparkRunner (barrier-mode launcher), checkpoints and run configuration."""

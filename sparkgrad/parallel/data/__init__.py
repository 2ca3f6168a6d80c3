"""Data parallelism: every rank a full replica, gradients averaged (DDP, buckets, overlap)."""

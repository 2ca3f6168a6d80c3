"""Build it yourself: the core of each chapter with its body removed (see README.md)."""

"""Side-by-side measurements against PyTorch (step time, collectives, distributed runs)."""

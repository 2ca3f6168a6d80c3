"""Schedulers (to be filled)."""

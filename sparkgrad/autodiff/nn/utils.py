"""Gradient utilities (to be filled)."""

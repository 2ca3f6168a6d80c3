"""Layers and losses (to be filled)."""

"""Initialisers (to be filled)."""

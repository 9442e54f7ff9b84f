"""Shared picture helpers: PIL image grids, and one way to save a matplotlib figure.

Each stage's own charts live with that stage (``balance.pictures``, ``evaluate.plots``).
"""

"""Sweeps: W&B sweep files run with or without a W&B server (``mtl sweep``)."""

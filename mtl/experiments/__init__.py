"""Experiments: many runs planned, run and compared.

``sweep`` (W&B sweep files run locally on Optuna storage, W&B's hyperband), ``cv`` (k-fold
cross-validation as the papers), ``report`` (runs compared in the papers' tables, with paired
differences; no torch), ``dashboard`` (W&B saved workspaces and reports), ``bench`` (training
against a bare PyTorch loop, inference, the data pipeline).

Nothing is imported here: each of these loads only what it needs.
"""

"""Masked task losses (pure functions) and loss weightings (modules)."""

from mtl.losses.task_losses import masked_cross_entropy
from mtl.losses.weighting import FixedWeighting, Weighting, WeightingCallable

__all__ = ["FixedWeighting", "Weighting", "WeightingCallable", "masked_cross_entropy"]

"""Loss weightings: how per-task losses combine into the training objective."""

from mtl.losses.weighting.base import Weighting, WeightingCallable
from mtl.losses.weighting.fixed import FixedWeighting

__all__ = ["FixedWeighting", "Weighting", "WeightingCallable"]

"""Masked task losses (pure functions) and loss weightings (modules)."""

from mtl.losses.task_losses import (
    CLASSIFICATION_LOSSES,
    masked_cross_entropy,
    masked_squared_hinge,
)
from mtl.losses.weighting import (
    DynamicWeightAverage,
    FixedWeighting,
    GradNorm,
    KangWeighting,
    PCGrad,
    UncertaintyWeighting,
    Weighting,
    WeightingCallable,
)

__all__ = [
    "CLASSIFICATION_LOSSES",
    "DynamicWeightAverage",
    "FixedWeighting",
    "GradNorm",
    "KangWeighting",
    "PCGrad",
    "UncertaintyWeighting",
    "Weighting",
    "WeightingCallable",
    "masked_cross_entropy",
    "masked_squared_hinge",
]

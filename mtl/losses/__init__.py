"""Masked task losses (pure functions) and loss weightings (modules)."""

from mtl.losses.regression import EuclideanGaussian
from mtl.losses.task_losses import (
    CLASSIFICATION_LOSSES,
    masked_cross_entropy,
    masked_euclidean_gaussian,
    masked_squared_hinge,
)
from mtl.losses.weighting import (
    WEIGHTINGS,
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
    "WEIGHTINGS",
    "CLASSIFICATION_LOSSES",
    "DynamicWeightAverage",
    "EuclideanGaussian",
    "FixedWeighting",
    "GradNorm",
    "KangWeighting",
    "PCGrad",
    "UncertaintyWeighting",
    "Weighting",
    "WeightingCallable",
    "masked_cross_entropy",
    "masked_euclidean_gaussian",
    "masked_squared_hinge",
]

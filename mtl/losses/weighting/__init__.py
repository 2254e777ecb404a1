"""Loss weightings: how per-task losses combine into the training objective."""

from mtl.losses.weighting.base import WEIGHTINGS, Weighting, WeightingCallable
from mtl.losses.weighting.dwa import DynamicWeightAverage
from mtl.losses.weighting.fixed import FixedWeighting
from mtl.losses.weighting.gradient import GradNorm, PCGrad
from mtl.losses.weighting.kang import KangWeighting
from mtl.losses.weighting.uncertainty import UncertaintyWeighting

__all__ = [
    "WEIGHTINGS",
    "DynamicWeightAverage",
    "FixedWeighting",
    "GradNorm",
    "KangWeighting",
    "PCGrad",
    "UncertaintyWeighting",
    "Weighting",
    "WeightingCallable",
]

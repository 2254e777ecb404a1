"""Loss weightings: how per-task losses combine into the training objective."""

from mtl.losses.weighting.base import WEIGHTINGS, Weighting, WeightingCallable
from mtl.losses.weighting.dwa import DynamicWeightAverage
from mtl.losses.weighting.fixed import FixedWeighting
from mtl.losses.weighting.geometric import GeometricLossStrategy
from mtl.losses.weighting.gradient import GradNorm, PCGrad
from mtl.losses.weighting.jacobian import (
    IMTLG,
    MGDA,
    AlignedMTL,
    CAGrad,
    ConFIG,
    DualProj,
    FairGrad,
    GradDrop,
    JacobianAggregation,
    UPGrad,
)
from mtl.losses.weighting.jacobian_state import GradVac, NashMTL, TaskStateAggregation
from mtl.losses.weighting.kang import KangWeighting
from mtl.losses.weighting.random_weights import RandomLossWeighting
from mtl.losses.weighting.uncertainty import UncertaintyWeighting

__all__ = [
    "IMTLG",
    "MGDA",
    "WEIGHTINGS",
    "AlignedMTL",
    "CAGrad",
    "ConFIG",
    "DualProj",
    "FairGrad",
    "GeometricLossStrategy",
    "GradDrop",
    "GradVac",
    "JacobianAggregation",
    "NashMTL",
    "RandomLossWeighting",
    "TaskStateAggregation",
    "UPGrad",
    "DynamicWeightAverage",
    "FixedWeighting",
    "GradNorm",
    "KangWeighting",
    "PCGrad",
    "UncertaintyWeighting",
    "Weighting",
    "WeightingCallable",
]

"""Per-task branches: FC -> [BN] -> ReLU -> Dropout, repeated, then FC to the class scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn


@dataclass
class HeadConfig:
    """Shape of every task branch (Sang & Cuong: FC 256 -> FC 256 -> FC C, BN, dropout 0.5)."""

    hidden: list[int] = field(default_factory=lambda: [256, 256])
    batch_norm: bool = True
    dropout: float = 0.5


class BranchHead(nn.Sequential):
    """One task's branch; outputs raw class scores (no softmax: the loss applies it)."""

    def __init__(
        self,
        in_features: int,
        num_outputs: int,
        hidden: Sequence[int] = (256, 256),
        batch_norm: bool = True,
        dropout: float = 0.5,
    ) -> None:
        layers: list[nn.Module] = []
        for width in hidden:
            layers.append(nn.Linear(in_features, width, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_features = width
        layers.append(nn.Linear(in_features, num_outputs))
        super().__init__(*layers)

    @classmethod
    def from_config(cls, in_features: int, num_outputs: int, cfg: HeadConfig) -> BranchHead:
        return cls(in_features, num_outputs, cfg.hidden, cfg.batch_norm, cfg.dropout)

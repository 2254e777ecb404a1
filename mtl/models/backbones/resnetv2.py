"""Multi-task ResNet-v2-50, versions 1 and 2 (Sang & Cuong 2018, section 3.3).

Built on timm's pre-activation ``resnetv2_50`` (stages of 3, 4, 6, 3 bottleneck units, base
depths 64/128/256/512, x4 output) with one input channel and timm's He initialisation.

* ver1 shares all four stages; each task gets FC 256 -> FC 256 -> classifier (the default head).
* ver2 shares the first three stages; each task gets its own copy of the fourth stage, the final
  pre-activation norm, global average pooling and a classifier (no hidden FC layers).
"""

from __future__ import annotations

import copy
from typing import Literal

import timm
import torch
from torch import nn

from mtl.models.backbones.base import Backbone
from mtl.models.heads import HeadConfig


class _TaskStage(nn.Module):
    """One task's private fourth stage: stage 4 -> pre-activation norm -> global average pool."""

    def __init__(self, stage: nn.Module, norm: nn.Module) -> None:
        super().__init__()
        self.stage, self.norm = stage, norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B x 1024 x h x w -> B x 2048
        return self.norm(self.stage(x)).mean(dim=(2, 3))


class ResNetV2(Backbone, name="resnetv2"):
    """Multi-task ResNet-v2-50 ``version`` 1 (all stages shared) or 2 (per-task stage 4)."""

    def __init__(
        self,
        version: Literal[1, 2] = 1,
        in_chans: int = 1,
        input_size: int = 48,
        model_name: str = "resnetv2_50",
    ) -> None:
        super().__init__()
        if version not in (1, 2):
            raise ValueError(f"ResNetV2 version must be 1 or 2, got {version}")
        model = timm.create_model(model_name, in_chans=in_chans, num_classes=0)
        self.version, self.in_chans, self.input_size = version, in_chans, input_size
        self.num_features = model.num_features
        if version == 1:
            self.trunk = model  # stem -> 4 stages -> norm -> pooled B x 2048
        else:
            self.trunk = nn.Sequential(model.stem, *list(model.stages)[:3])  # -> B x 1024 x h x w
            # a plain tuple, not submodules: the templates are copied per task, never run
            self._templates = (model.stages[3], model.norm)
            self.default_head = HeadConfig(hidden=[], batch_norm=False, dropout=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)  # ver1: B x 2048; ver2: B x 1024 x h x w

    def task_trunk(self) -> nn.Module | None:
        """ver2: a fresh, independently initialised copy of stage 4 for one task."""
        if self.version == 1:
            return None
        stage, norm = (copy.deepcopy(m) for m in self._templates)
        branch = _TaskStage(stage, norm)
        for m in branch.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        return branch

"""A shared backbone with one branch per task."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn

from mtl.models.backbones import Backbone
from mtl.models.heads import BranchHead, HeadConfig
from mtl.tasks import Task


def init_normal_(module: nn.Module, std: float) -> None:
    """Gaussian N(0, std) weights for every conv/linear layer, zero biases (Sang & Cuong)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class MultiTaskNet(nn.Module):
    """Backbone features -> every task's branch; every head runs on every sample."""

    def __init__(
        self,
        tasks: Sequence[Task],
        backbone: Backbone,
        head: HeadConfig | None = None,
        init_std: float | Literal["auto"] | None = "auto",
        test_time_flip: bool = False,
    ) -> None:
        """``init_std``: N(0, std) for every conv/linear weight; ``"auto"`` uses the backbone's
        paper default (0.01 for the BKNet family, the layers' own init otherwise); None keeps
        the layers' own (PyTorch/timm) initialisation. ``test_time_flip``: in eval mode, each
        face's outputs averaged with its mirror image's (training sees mirrored faces through
        the flip augmentation, so both views are faces the network knows). A regression task's
        branch has one output, returned as a B-vector."""
        super().__init__()
        self.test_time_flip = test_time_flip
        if not tasks:
            raise ValueError("MultiTaskNet needs at least one task")
        head = head or backbone.default_head or HeadConfig()
        self.head_config = head  # resolved: what a saved config names
        self.task_names = [t.name for t in tasks]
        self.backbone = backbone
        outputs = {t.name: t.num_classes for t in tasks}
        self.kinds = {t.name: t.kind for t in tasks}
        private = {name: backbone.task_trunk() for name in outputs}
        self.task_trunks = nn.ModuleDict({k: m for k, m in private.items() if m is not None})
        self.heads = nn.ModuleDict(
            {
                name: BranchHead.from_config(backbone.num_features, n, head)
                for name, n in outputs.items()
            }
        )
        if init_std == "auto":
            init_std = backbone.default_init_std
        if init_std is not None:
            init_normal_(self, init_std)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.test_time_flip and not self.training:
            return self._flip_averaged(x)
        return self._forward(x)

    @contextmanager
    def single_view(self) -> Iterator[None]:
        """Each face once whatever ``test_time_flip`` says: for what must see the images as
        training does (batch-norm recalibration, whose batch norms train in an eval-mode net)."""
        flip, self.test_time_flip = self.test_time_flip, False
        try:
            yield
        finally:
            self.test_time_flip = flip

    def _flip_averaged(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Both views in one batch (in eval mode batch norm uses its running statistics, so
        the views do not mix); each task's raw outputs averaged as its kind averages
        probabilities. Costs twice the activation memory of one view."""
        both = self._forward(torch.cat([x, x.flip(-1)]))  # 2B x C x H x W in, 2B (x C_t) out
        return {
            name: self.kinds[name].average_raw(out.unflatten(0, (2, -1)))  # 2 x B (x C_t) -> B
            for name, out in both.items()
        }

    def _forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared = self.backbone(x)  # B x F (or a feature map that per-task trunks finish)
        out = {}
        for name, head in self.heads.items():
            trunk = self.task_trunks[name] if name in self.task_trunks else None  # noqa: SIM401
            head_out = head(trunk(shared) if trunk is not None else shared)  # B x C_t
            out[name] = self.kinds[name].from_head(head_out)  # B x C_t, or B for a regression
        return out

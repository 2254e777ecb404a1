"""A checkpoint ensemble as a network: copies of one network holding several epochs' weights,
their outputs averaged per task (Sang & Cuong 4.2). Plain torch, so inference and export use it
without the training layer; :class:`mtl.training.ensemble.CheckpointEnsemble` keeps the members.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from mtl.tasks import Task


def average_outputs(
    outputs: Sequence[Mapping[str, torch.Tensor]], tasks: Sequence[Task]
) -> dict[str, torch.Tensor]:
    """The members' mean class probabilities (B x C_t) or mean values (B), per task."""
    averaged = {}
    for t in tasks:
        stack = torch.stack([out[t.name] for out in outputs])  # K x B (x C_t)
        averaged[t.name] = t.kind.average(stack)  # B (x C_t)
    return averaged


def member_files(folder: Path, size: int) -> list[Path]:
    """The last ``size`` epochs' member files in ``folder``, oldest first."""
    return sorted(folder.glob("epoch*.pt"))[-size:] if folder.is_dir() else []


class EnsembleNet(nn.Module):
    """Copies of a network holding the members' weights; outputs averaged per task."""

    def __init__(self, net: nn.Module, files: Sequence[Path], tasks: Sequence[Task]) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.members = nn.ModuleList()
        for file in files:
            member = copy.deepcopy(net)
            member.load_state_dict(torch.load(file, map_location="cpu", weights_only=True)["net"])
            self.members.append(member.eval())

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return average_outputs([member(image) for member in self.members], self.tasks)

"""Run by tests/test_ddp.py: three epochs of one training step each, on one process with the
global batch or on two DDP processes (gloo) with half of it each, for several weightings; rank 0
saves the trained weights. Lightning's DDP launcher re-runs this file once per rank."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import lightning as L
import torch

from mtl.data import SyntheticDataModule, SyntheticSource
from mtl.losses import DynamicWeightAverage, FixedWeighting, GradNorm, PCGrad, UncertaintyWeighting
from mtl.models import BKNet, HeadConfig
from mtl.module import MultiTaskModule

WEIGHTINGS = {
    "fixed": FixedWeighting,
    "uncertainty": UncertaintyWeighting,
    "dwa": DynamicWeightAverage,  # epoch means from every rank set epoch 3's weights
    "gradnorm": GradNorm,  # act on each rank's gradients (see the README): ranks stay in sync
    "pcgrad": PCGrad,
}
GLOBAL_BATCH = 8


def train(name: str, devices: int, out: Path) -> None:
    L.seed_everything(0)
    sources = [
        SyntheticSource("a", ["smile"], 24, 4, 4),
        SyntheticSource("b", ["emotion"], 24, 4, 4),
        SyntheticSource("c", ["gender", "age"], 8, 4, 4),  # sparse: a rank's batch misses it
    ]
    data = SyntheticDataModule(sources, batch_size=GLOBAL_BATCH // devices, seed=3)
    model = MultiTaskModule(
        data.task_names,
        backbone=BKNet(channels=[[4], [8], [8], [8]], batch_norm=False),  # no batch statistics
        head=HeadConfig(hidden=[8], batch_norm=False, dropout=0.0),
        weighting=WEIGHTINGS[name],
        optimizer=functools.partial(torch.optim.SGD, lr=0.5),
        lr_scheduler=None,
    )
    trainer = L.Trainer(
        accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
        max_epochs=3, limit_train_batches=1, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=out,
    )  # fmt: skip
    trainer.fit(model, data)
    torch.save(model.state_dict(), out / f"{name}-{devices}-rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    folder, world = Path(sys.argv[1]), int(sys.argv[2])
    for weighting in WEIGHTINGS:
        train(weighting, world, folder)

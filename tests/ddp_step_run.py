"""Run by tests/test_ddp.py: three epochs of one training step each, on one process with the
global batch or on two DDP processes (gloo) with half of it each, for several weightings. Each
rank saves the trained weights, the last epoch's logged loss means and metrics, and which tasks
its last batch labelled. Last, a batch-norm network with precise BN saves each rank's running
statistics. Lightning's DDP launcher re-runs this file once per rank."""

from __future__ import annotations

import copy
import functools
import sys
from pathlib import Path

import lightning as L
import torch

from mtl.data import SyntheticDataModule, SyntheticSource
from mtl.losses import WEIGHTINGS as REGISTRY
from mtl.models import BKNet, HeadConfig
from mtl.training.module import MultiTaskModule
from mtl.training.precise_bn import batch_norms

WEIGHTINGS = dict(REGISTRY)
"""Every registered weighting, with its defaults. DWA: epoch means from every rank set epoch 3's
weights; GradNorm and PCGrad act on each rank's own gradients (docs: guide/multi-gpu.md), so
their ranks stay in sync rather than matching one device."""
GLOBAL_BATCH = 8


class Record(L.Callback):
    """Which tasks each of the rank's training batches labelled, and each epoch's logged loss
    means and metrics (the step values are the rank's own)."""

    def __init__(self) -> None:
        self.labelled: list[list[bool]] = []
        self.epochs: list[dict[str, float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.labelled.append(batch["mask"].any(dim=0).tolist())  # T bools

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch > 0:  # the last epoch's figures are logged by now
            self._record(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._record(trainer)

    def _record(self, trainer: L.Trainer) -> None:
        figures = trainer.callback_metrics.items()
        ends = ("loss_epoch", "/acc", "/f1", "/mae")
        self.epochs.append({k: float(v) for k, v in figures if k.endswith(ends)})


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
        default_root_dir=out, callbacks=[record := Record()],
    )  # fmt: skip
    trainer.fit(model, data)
    run = out / f"{name}-{devices}-rank{trainer.global_rank}"
    torch.save(model.state_dict(), run.with_suffix(".pt"))
    torch.save({"labelled": record.labelled, "epochs": record.epochs}, run.with_suffix(".epoch.pt"))


class EvaluatedStatistics(L.Callback):
    """The batch-norm statistics a validation evaluates with, taken before its first step (a
    DDP forward then broadcasts rank 0's buffers, which would hide a rank's own), and those
    this rank's own remembered batches give alone."""

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        def running(net: torch.nn.Module) -> dict[str, torch.Tensor]:
            return {k: v.clone() for k, v in net.state_dict().items() if "running_" in k}

        self.evaluated = running(pl_module.net)
        own = copy.deepcopy(pl_module.net).eval()
        with torch.inference_mode(False), torch.no_grad():
            for m in batch_norms(own):
                m.reset_running_stats()
                m.momentum = None
                m.train()
            for images in pl_module.precise_bn.batches:
                own(images.clone())
        self.own = running(own)


def train_precise_bn(devices: int, out: Path) -> None:
    """Two epochs of a batch-norm BKNet with precise BN and validation: each rank recomputes
    the statistics from its own batches, then the ranks average them."""
    L.seed_everything(0)
    sources = [SyntheticSource("a", ["smile"], 16, 4, 4), SyntheticSource("b", ["age"], 8, 4, 4)]
    data = SyntheticDataModule(sources, batch_size=GLOBAL_BATCH // devices, seed=3)
    backbone = BKNet(channels=[[4], [8], [8], [8]])
    model = MultiTaskModule(data.task_names, backbone=backbone, head=HeadConfig(hidden=[8]))
    model.precise_bn.images = 8
    trainer = L.Trainer(
        accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
        max_epochs=2, limit_val_batches=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=out,
        callbacks=[evaluated := EvaluatedStatistics()],
    )  # fmt: skip
    trainer.fit(model, data)
    statistics = {"evaluated": evaluated.evaluated, "own": evaluated.own}
    torch.save(statistics, out / f"precise_bn-{devices}-rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    folder, world = Path(sys.argv[1]), int(sys.argv[2])
    for weighting in WEIGHTINGS:
        train(weighting, world, folder)
    train_precise_bn(world, folder)

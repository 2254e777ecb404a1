"""Run by tests/test_sampler.py: two-process Lightning DDP on CPU (gloo), recording each rank's
training indices per epoch and its training data path. Lightning's DDP launcher re-runs this file
once per rank."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import lightning as L

from mtl.data import MultiSourceDataModule, SyntheticDataModule, SyntheticSource
from mtl.data import device as data_device
from mtl.models import BKNet, HeadConfig
from mtl.training.module import MultiTaskModule

SIZES = (30, 90)


class RecordIndices(L.Callback):
    def __init__(self, out: Path) -> None:
        self.out, self.epochs = out, {}

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sampler = trainer.train_dataloader.sampler
        self.epochs[trainer.current_epoch] = {
            "sampler": type(sampler).__name__, "rank": sampler.rank, "indices": list(sampler),
        }  # fmt: skip

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        record = self.epochs | {"in_memory": trainer.datamodule.data_path.in_memory}
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


def main(out: Path) -> None:
    if os.environ.get("LOCAL_RANK", "0") != "0":  # alone, rank 1 would choose the DataLoader
        data_device.total_memory = lambda device: 1

    def source(name: str, task: str, n: int) -> SyntheticDataModule:
        return SyntheticDataModule([SyntheticSource(name, [task], train=n, val=4, test=4)])

    dm = MultiSourceDataModule(
        [source("a", "smile", SIZES[0]), source("b", "emotion", SIZES[1])], batch_size=16, seed=7
    )
    narrow = BKNet(channels=[[4], [8], [8], [8]])
    model = MultiTaskModule(dm.task_names, backbone=narrow, head=HeadConfig(hidden=[8]))
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, limit_val_batches=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[RecordIndices(out)], default_root_dir=out,
    )  # fmt: skip
    trainer.fit(model, dm)


if __name__ == "__main__":
    main(Path(sys.argv[1]))

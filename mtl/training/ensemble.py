"""Checkpoint ensembles (Sang & Cuong 4.2): the last K epochs' weights, their outputs averaged.

During fit, :class:`CheckpointEnsemble` keeps the network weights of the last ``size`` training
epochs beside the run's checkpoints (``checkpoints/ensemble/epochNNN.pt``, plain tensors). A test
then evaluates, beside the final model, the ensemble that averages the members' softmax
probabilities (the members' values for a regression task), logged as ``test_ens/<task>/acc``,
``test_ens/<source>/<task>/acc`` …; ``mtl test --ckpt_path RUN/checkpoints/last.ckpt`` finds
the members next to the checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from mtl.models.ensemble import EnsembleNet, member_files
from mtl.training.hooks import skip_unused_batch_hooks
from mtl.training.metrics import StageMetrics, evaluation_sources

STAGE = "test_ens"
"""Prefix of the ensemble's metrics."""


@skip_unused_batch_hooks
class CheckpointEnsemble(L.Callback):
    """Keeps the last ``size`` epochs' weights during fit; evaluates their ensemble in a test."""

    def __init__(self, size: int = 10) -> None:
        """
        Args:
            size: epochs whose weights the ensemble averages (the papers: the last 10).
        """
        if size < 1:
            raise ValueError(f"ensemble size must be >= 1, got {size}")
        self.size = size
        self.folder: Path | None = None  # where this process's fit keeps the members
        self.ensemble: EnsembleNet | None = None
        self.metrics: StageMetrics | None = None
        self.members = 0  # how many the last test averaged (fewer than size where fewer kept)

    @staticmethod
    def folder_of(trainer: L.Trainer) -> Path:
        """``<checkpoint dir>/ensemble`` of the running fit."""
        checkpoint = trainer.checkpoint_callback
        dirpath = getattr(checkpoint, "dirpath", None)
        return Path(dirpath or Path(trainer.log_dir or ".") / "checkpoints") / "ensemble"

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder = self.folder_of(trainer)
        if not trainer.is_global_zero:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in pl_module.net.state_dict().items()}
        torch.save({"epoch": trainer.current_epoch, "net": state},
                   self.folder / f"epoch{trainer.current_epoch:03d}.pt")  # fmt: skip
        for old in sorted(self.folder.glob("epoch*.pt"))[: -self.size]:
            old.unlink(missing_ok=True)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Load the members rank 0 finds; every rank gets the same list (a rank that cannot
        read a member fails, it does not skip the ensemble's collectives)."""
        trainer.strategy.barrier()  # rank 0 wrote the last member
        folder = Path(trainer.ckpt_path).parent / "ensemble" if trainer.ckpt_path else self.folder
        files = member_files(folder, self.size) if folder is not None else []
        files = trainer.strategy.broadcast(files, src=0)
        self.ensemble = self.metrics = None
        self.members = len(files)
        if not files:
            rank_zero_info(f"checkpoint ensemble: no member weights in {folder}; not evaluated")
            return
        rank_zero_info(f"checkpoint ensemble: {len(files)} epochs ({files[0].stem}..)")
        self.ensemble = EnsembleNet(pl_module.net, files, pl_module.tasks).to(pl_module.device)
        sources = evaluation_sources(trainer.datamodule, "test")
        self.metrics = StageMetrics(pl_module.tasks, STAGE, sources, with_losses=False)
        self.metrics = self.metrics.to(pl_module.device)

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        if self.ensemble is not None and self.metrics is not None:
            self.metrics.update(self.ensemble(batch["image"]), batch)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.metrics is None:
            return
        values = self.metrics.compute()  # every rank (synced): the same values
        self.metrics.reset()
        pl_module.log_dict({k: float(v) for k, v in values.items()}, sync_dist=False)
        self.ensemble = None  # free the members' memory

"""The multi-task LightningModule: network, masked losses, weighting, metrics, optimisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from mtl.losses import FixedWeighting, WeightingCallable, masked_cross_entropy
from mtl.losses.task_losses import Normalization
from mtl.models import Backbone, BKNet, HeadConfig, MultiTaskNet
from mtl.optim import ExponentialDecay, MomentumSGD, param_groups
from mtl.tasks import DEFAULT_AGE_EDGES, Task, build_tasks

STAGES = ("train", "val", "test")


def task_metrics(task: Task) -> MetricCollection:
    """Metrics of one classification task; logged as ``{stage}/{task}/{name}``."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(task.num_classes, average="micro"),
            "f1": MulticlassF1Score(task.num_classes, average="macro"),
        }
    )


class MultiTaskModule(L.LightningModule):
    """Learns every task of the run jointly from batches with per-task label masks."""

    def __init__(
        self,
        tasks: Sequence[str],
        age_edges: Sequence[int] = DEFAULT_AGE_EDGES,
        backbone: Backbone | None = None,
        head: HeadConfig | None = None,
        init_std: float | Literal["auto"] | None = "auto",
        weighting: WeightingCallable = FixedWeighting,
        normalization: Normalization = "batch",
        optimizer: OptimizerCallable = MomentumSGD,
        lr_scheduler: LRSchedulerCallable | None = ExponentialDecay,
        decay_norm_and_bias: bool = False,
        monitor: str = "val/loss",
    ) -> None:
        """
        Args:
            tasks: names of the run's tasks (the CLI links them from the data module).
            age_edges: age-group edges in years (linked from the data module too).
            backbone: shared trunk (default: Multi-task BKNet's, with batch norm).
            head: shape of every task branch (default FC 256 -> FC 256, BN, dropout 0.5).
            init_std: N(0, init_std) initialisation of all weights; "auto" takes the backbone's
                paper default (0.01 for BKNet/MBKNet), None keeps PyTorch's/timm's own.
            weighting: how per-task losses combine (default: fixed mu_t = 1).
            normalization: divide each task's summed loss by the batch size ("batch", the
                paper's Eq. 1) or by its labelled count ("labelled").
            optimizer: optimiser class and arguments (default: SGD, momentum 0.9, lr 0.01).
            lr_scheduler: schedule (default: the paper's exponential decay), or None.
            decay_norm_and_bias: also apply weight decay to biases and norm parameters.
            monitor: metric a plateau scheduler watches.
        """
        super().__init__()
        self.save_hyperparameters()
        self.tasks: tuple[Task, ...] = build_tasks(tasks, age_edges)
        self.net = MultiTaskNet(self.tasks, backbone or BKNet(), head, init_std)
        bb = self.net.backbone
        self.example_input_array = torch.zeros(1, bb.in_chans, bb.input_size, bb.input_size)
        self.weighting = weighting([t.name for t in self.tasks])
        self.normalization = normalization
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self.decay_norm_and_bias, self.monitor = decay_norm_and_bias, monitor
        # Keyed "<stage>_metrics": a ModuleDict key "train" would clash with Module.train.
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_metrics": nn.ModuleDict({t.name: task_metrics(t) for t in self.tasks})
                for stage in STAGES
            }
        )

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(image)  # {task: B x C_t}

    def task_losses(self, logits: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        """Masked loss of every task (exact zero for a task with no label in the batch)."""
        targets, mask = batch["targets"], batch["mask"]  # B x T each
        return {
            t.name: masked_cross_entropy(
                logits[t.name], targets[:, j], mask[:, j], self.normalization
            )
            for j, t in enumerate(self.tasks)
        }

    def shared_step(self, batch: dict, stage: str) -> torch.Tensor:
        logits = self(batch["image"])
        losses = self.task_losses(logits, batch)
        total = self.weighting(losses)
        on_step = stage == "train"
        log = dict(on_step=on_step, on_epoch=True, batch_size=batch["image"].shape[0])
        self.log(f"{stage}/loss", total, prog_bar=True, **log)
        for j, t in enumerate(self.tasks):
            self.log(f"{stage}/{t.name}/loss", losses[t.name], **log)
            labelled = batch["mask"][:, j]  # B
            if labelled.any():
                self.metrics[f"{stage}_metrics"][t.name].update(
                    logits[t.name][labelled].detach(), batch["targets"][labelled, j]
                )
        if stage == "train":
            for name, w in self.weighting.weights().items():
                self.log(f"train/{name}/weight", w, on_step=True, on_epoch=False)
        return total

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.shared_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.shared_step(batch, "test")

    def predict_step(self, batch: dict, batch_idx: int) -> dict[str, torch.Tensor]:
        """Class probabilities per task ({task: B x C_t})."""
        return {name: logit.softmax(-1) for name, logit in self(batch["image"]).items()}

    def _log_epoch_metrics(self, stage: str) -> None:
        """Compute, log and reset the metrics of tasks that saw at least one label."""
        for task_name, collection in self.metrics[f"{stage}_metrics"].items():
            first: Metric = next(iter(collection.values()))
            if first.update_count == 0:
                continue
            for name, value in collection.compute().items():
                self.log(
                    f"{stage}/{task_name}/{name}", value, prog_bar=name == "acc" and stage == "val"
                )
            collection.reset()

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def configure_optimizers(self):
        groups = param_groups(self.net, self.weighting.parameters(), self.decay_norm_and_bias)
        optimizer = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        interval = getattr(scheduler, "interval", "epoch")
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval, "monitor": self.monitor},
        }

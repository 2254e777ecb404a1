"""The multi-task LightningModule: network, masked losses, weighting, metrics, optimisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanMetric, Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from mtl.losses import CLASSIFICATION_LOSSES, FixedWeighting, WeightingCallable
from mtl.losses.age_regression import AGE_YEARS, AgeRegression
from mtl.losses.task_losses import Normalization
from mtl.models import Backbone, BKNet, HeadConfig, MultiTaskNet
from mtl.optim import ExponentialDecay, MomentumSGD, param_groups
from mtl.tasks import DEFAULT_AGE_EDGES, Task, build_tasks

STAGES = ("train", "val", "test")
EVAL_STAGES = ("val", "test")


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
        task_loss: Literal["cross_entropy", "squared_hinge"] = "cross_entropy",
        age_regression: AgeRegression | None = None,
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
            task_loss: per-task classification loss: softmax cross-entropy (Eq. 1) or the
                multi-class squared hinge "SVM" loss (Eq. 2).
            age_regression: also regress age in years (Jassim et al.) in a branch
                ``age_years`` beside the age-group classifier; None: off.
            optimizer: optimiser class and arguments (default: SGD, momentum 0.9, lr 0.01).
            lr_scheduler: schedule (default: the paper's exponential decay), or None.
            decay_norm_and_bias: also apply weight decay to biases and norm parameters.
            monitor: metric a plateau scheduler watches.
        """
        super().__init__()
        self.save_hyperparameters()
        self.tasks: tuple[Task, ...] = build_tasks(tasks, age_edges)
        if age_regression is not None and "age" not in {t.name for t in self.tasks}:
            raise ValueError("age_regression needs the age task (data labelled with age)")
        self.age_regression = age_regression
        self.regression = [AGE_YEARS] if age_regression is not None else []
        self.loss_names = [t.name for t in self.tasks] + self.regression  # one loss each
        self.net = MultiTaskNet(self.tasks, backbone or BKNet(), head, init_std, self.regression)
        bb = self.net.backbone
        self.example_input_array = torch.zeros(1, bb.in_chans, bb.input_size, bb.input_size)
        self.weighting = weighting(self.loss_names)
        self.normalization = normalization
        self.task_loss = CLASSIFICATION_LOSSES[task_loss]
        self.optimizer_factory, self.scheduler_factory = optimizer, lr_scheduler
        self.decay_norm_and_bias, self.monitor = decay_norm_and_bias, monitor
        # Keyed "<stage>_metrics": a ModuleDict key "train" would clash with Module.train.
        self.metrics = nn.ModuleDict(
            {
                f"{stage}_metrics": nn.ModuleDict({t.name: task_metrics(t) for t in self.tasks})
                for stage in STAGES
            }
        )
        self.regression_metrics = nn.ModuleDict(
            {f"{s}_metrics": nn.ModuleDict({n: MeanAbsoluteError() for n in self.regression})
             for s in STAGES}
        )  # fmt: skip
        # Evaluation losses are averaged by metrics (not self.log) so that several per-source
        # loaders feed one "val/loss"; Lightning would key each loader's log separately.
        names = ["total", *self.loss_names]
        self.loss_means = nn.ModuleDict(
            {f"{s}_losses": nn.ModuleDict({n: MeanMetric() for n in names}) for s in EVAL_STAGES}
        )
        self.source_names: list[str] = []
        self.source_metrics = nn.ModuleDict()  # "<stage>_<source>" -> task -> metrics

    def setup(self, stage: str) -> None:
        """Per-source metrics when the data has several sources (one eval loader each)."""
        names = list(getattr(self.trainer.datamodule, "source_names", []) or [])
        if len(names) < 2 or self.source_metrics:
            return
        self.source_names = names
        for s in EVAL_STAGES:
            for src in names:
                tasks = nn.ModuleDict({t.name: task_metrics(t) for t in self.tasks})
                self.source_metrics[f"{s}_{src}"] = tasks

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(image)  # {task: B x C_t}, {age_years: B} with age regression

    def task_losses(self, logits: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        """Masked loss of every task (exact zero for a task with no label in the batch)."""
        targets, mask = batch["targets"], batch["mask"]  # B x T each
        losses = {
            t.name: self.task_loss(logits[t.name], targets[:, j], mask[:, j], self.normalization)
            for j, t in enumerate(self.tasks)
        }
        if self.age_regression is not None:
            losses[AGE_YEARS] = self.age_regression.loss(
                logits[AGE_YEARS], batch["age_years"], self.global_step, self.normalization
            )
        return losses

    def shared_step(self, batch: dict, stage: str, dataloader_idx: int = 0) -> torch.Tensor:
        logits = self(batch["image"])
        losses = self.task_losses(logits, batch)
        present = batch["mask"].any(dim=0)  # T: tasks labelled in this batch
        if self.regression:
            present = torch.cat([present, torch.isfinite(batch["age_years"]).any()[None]])
        shared = None
        if stage == "train" and self.weighting.needs_shared_params:
            shared = [p for p in self.net.backbone.parameters() if p.requires_grad]
        total = self.weighting(losses, present=present, shared=shared)
        n = batch["image"].shape[0]
        if stage == "train":
            log = dict(on_step=True, on_epoch=True, batch_size=n)
            self.log("train/loss", total, prog_bar=True, **log)
            for name in self.loss_names:
                self.log(f"train/{name}/loss", losses[name], **log)
            for name, w in self.weighting.weights().items():
                self.log(f"train/{name}/weight", w, on_step=True, on_epoch=False)
        else:
            means = self.loss_means[f"{stage}_losses"]
            means["total"].update(total.detach(), n)
            for name in self.loss_names:
                means[name].update(losses[name].detach(), n)
        self._update_metrics(logits, batch, stage, dataloader_idx)
        return total

    def _update_metrics(self, logits: dict, batch: dict, stage: str, dataloader_idx: int) -> None:
        """Feed each task's metrics only the rows labelled for it (also per source)."""
        by_source = None
        if stage != "train" and self.source_names:
            by_source = self.source_metrics[f"{stage}_{self.source_names[dataloader_idx]}"]
        for j, t in enumerate(self.tasks):
            labelled = batch["mask"][:, j]  # B
            if not labelled.any():
                continue
            scores, targets = logits[t.name][labelled].detach(), batch["targets"][labelled, j]
            self.metrics[f"{stage}_metrics"][t.name].update(scores, targets)
            if by_source is not None:
                by_source[t.name].update(scores, targets)
        for name in self.regression:
            known = torch.isfinite(batch["age_years"])  # B
            if known.any():
                mae = self.regression_metrics[f"{stage}_metrics"][name]
                mae.update(logits[name][known].detach(), batch["age_years"][known])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.shared_step(batch, "val", dataloader_idx)

    def test_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.shared_step(batch, "test", dataloader_idx)

    def predict_step(
        self, batch: dict, batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, torch.Tensor]:
        """Class probabilities per task ({task: B x C_t})."""
        out = self(batch["image"])
        return {name: v if name in self.regression else v.softmax(-1) for name, v in out.items()}

    def _log_collections(self, prefix: str, collections: nn.ModuleDict, prog_bar: bool) -> None:
        """Compute, log and reset the metrics of tasks that saw at least one label."""
        for task_name, collection in collections.items():
            first: Metric = next(iter(collection.values()))
            if first.update_count == 0:
                continue
            for name, value in collection.compute().items():
                self.log(f"{prefix}/{task_name}/{name}", value, prog_bar=prog_bar and name == "acc")
            collection.reset()

    def _log_epoch_metrics(self, stage: str) -> None:
        self._log_collections(stage, self.metrics[f"{stage}_metrics"], prog_bar=stage == "val")
        for name, mae in self.regression_metrics[f"{stage}_metrics"].items():
            if mae.update_count:
                self.log(f"{stage}/{name}/mae", mae.compute())
                mae.reset()
        if stage == "train":
            return
        for name, mean in self.loss_means[f"{stage}_losses"].items():
            if mean.update_count:
                key = f"{stage}/loss" if name == "total" else f"{stage}/{name}/loss"
                self.log(key, mean.compute(), prog_bar=name == "total")
                mean.reset()
        for src in self.source_names:
            self._log_collections(f"{stage}/{src}", self.source_metrics[f"{stage}_{src}"], False)

    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")
        self.weighting.epoch_end()

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

"""What evaluation shows beyond scalars: confusion matrices and a table of sample predictions.

Both are callbacks the CLI installs by default. They hand their results to every logger that
has the matching method (``log_confusion_matrix``, ``log_predictions``: W&B draws them, the CSV
logger writes confusion matrices as CSV files); with no such logger they cost nothing.
Confusion matrices are torchmetrics states synced over DDP ranks at the end of each validation
and test epoch, computed on every rank in the same order; only rank 0's loggers write.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassConfusionMatrix

from mtl.tasks import Task
from mtl.training.metrics import EVAL_STAGES, evaluation_sources


def _loggers_with(trainer: L.Trainer, method: str) -> list[Any]:
    return [logger for logger in trainer.loggers if callable(getattr(logger, method, None))]


def _class_name(task: Task, value: float) -> str:
    return task.class_names[int(value)] if task.kind == "classification" else f"{value:.1f}"


class ConfusionMatrices(L.Callback):
    """One confusion matrix per classification task and evaluation stage (labelled rows only),
    logged as ``<stage>/<task>/confusion`` at the end of every validation and test epoch; a
    test also gets one per source and task (``test/<source>/<task>/confusion``). The latest
    matrices stay in :attr:`results` (for the test report)."""

    ALL = ""  # the key of the matrices over every source

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        tasks = [t for t in pl_module.tasks if t.kind == "classification"]
        self.tasks = {t.name: t for t in tasks}
        self.sources = {"val": {}, "test": evaluation_sources(trainer.datamodule, "test")}

        def matrices(names: list[str]) -> nn.ModuleDict:
            return nn.ModuleDict(
                {t.name: MulticlassConfusionMatrix(t.num_classes) for t in tasks if t.name in names}
            )

        def stage_matrices(stage: str) -> nn.ModuleDict:  # all sources, then each source
            per_source = enumerate(self.sources[stage].values())
            return nn.ModuleDict(
                {"all": matrices(list(self.tasks))}
                | {f"source{k}": matrices(names) for k, names in per_source}
            )

        self.matrices = nn.ModuleDict({s: stage_matrices(s) for s in EVAL_STAGES})
        self.matrices.to(pl_module.device)
        self.results: dict[str, dict[tuple[str, str], torch.Tensor]] = {}

    def _update(
        self, stage: str, pl_module: L.LightningModule, outputs: Any, batch: Mapping
    ) -> None:
        if not isinstance(outputs, Mapping):
            return
        for j, name in enumerate(pl_module.task_names):
            if name not in self.tasks:
                continue
            labelled = batch["mask"][:, j]  # B
            rows = {"all": labelled}
            for k in range(len(self.sources[stage])):
                rows[f"source{k}"] = labelled & (batch["source"] == k)
            for key, selected in rows.items():
                metric = self.matrices[stage][key]
                if name in metric and selected.any():  # an update, not a collective: safe
                    preds = outputs[name][selected].detach().argmax(dim=1)
                    metric[name].update(preds, batch["targets"][selected, j].long())

    def _log(self, stage: str, trainer: L.Trainer) -> None:
        loggers = _loggers_with(trainer, "log_confusion_matrix")
        sources = [self.ALL, *self.sources[stage]]
        self.results[stage] = {}
        for source, group in zip(sources, self.matrices[stage].values(), strict=True):
            for name, metric in group.items():  # every rank, the same order
                with warnings.catch_warnings():  # a task no rank saw: an all-zero matrix
                    warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
                    matrix = metric.compute().cpu()
                metric.reset()
                self.results[stage][(source, name)] = matrix
                if trainer.sanity_checking:
                    continue
                key = f"{stage}/{source}/{name}" if source else f"{stage}/{name}"
                for logger in loggers:
                    logger.log_confusion_matrix(
                        f"{key}/confusion",
                        list(self.tasks[name].class_names),
                        matrix,
                        trainer.global_step,
                    )

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        self._update("val", pl_module, outputs, batch)

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        self._update("test", pl_module, outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log("val", trainer)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log("test", trainer)


def write_confusion_csv(matrix: torch.Tensor, class_names: list[str], path: Path) -> None:
    """A confusion matrix as CSV: a row per actual class, a column per predicted class."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual \\ predicted", *class_names])
        for name, row in zip(class_names, matrix.tolist(), strict=True):
            writer.writerow([name, *row])


class PredictionSamples(L.Callback):
    """A table of the first ``count`` faces of each validation epoch (rank 0's), with every
    task's label, prediction and probability, logged as ``val/predictions``."""

    def __init__(self, count: int = 16) -> None:
        self.count = count
        self.sample: dict[str, torch.Tensor] | None = None

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        if batch_idx == 0 and trainer.is_global_zero and isinstance(outputs, Mapping):
            n = self.count
            self.sample = {k: v[:n].detach().cpu() for k, v in batch.items()}
            self.sample |= {f"out/{k}": v[:n].detach().cpu() for k, v in outputs.items()}

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loggers = _loggers_with(trainer, "log_predictions")
        if self.sample is None or trainer.sanity_checking or not loggers:
            return
        columns, rows = self.table(trainer, pl_module, self.sample)
        for logger in loggers:
            logger.log_predictions(
                "val/predictions", self.sample["image"], columns, rows, trainer.global_step
            )
        self.sample = None

    @staticmethod
    def table(
        trainer: L.Trainer, pl_module: L.LightningModule, sample: dict
    ) -> tuple[list[str], list[list]]:
        """Columns source, then per task: label, prediction, probability (or value)."""
        names = getattr(trainer.datamodule, "source_names", [])
        columns = ["source"]
        for t in pl_module.tasks:
            columns += [f"{t.name}", f"{t.name} predicted", f"{t.name} p"]
        rows = []
        for i in range(len(sample["image"])):
            source = int(sample["source"][i])
            row: list = [names[source] if source < len(names) else source]
            for j, t in enumerate(pl_module.tasks):
                out = sample[f"out/{t.name}"][i]
                label = _class_name(t, sample["targets"][i, j]) if sample["mask"][i, j] else ""
                if t.kind == "classification":
                    probs = out.softmax(-1)
                    row += [label, t.class_names[int(probs.argmax())], round(float(probs.max()), 3)]
                else:
                    row += [label, f"{float(out):.1f}", None]
            rows.append(row)
        return columns, rows

"""What evaluation shows beyond scalars: confusion matrices and a table of sample predictions.

Both are callbacks the CLI installs by default. They hand their results to every logger that
has the matching method (``log_confusion_matrix``, ``log_predictions``: W&B draws them, the CSV
logger writes confusion matrices as CSV files); with no such logger they cost nothing.
Confusion matrices are the module's own metric states, synced over DDP ranks at the end of each
validation and test epoch, read on every rank in the same order; only rank 0's loggers write.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch

from mtl.tasks import metric_key
from mtl.training.hooks import skip_unused_batch_hooks


def _loggers_with(trainer: L.Trainer, method: str) -> list[Any]:
    return [logger for logger in trainer.loggers if callable(getattr(logger, method, None))]


@skip_unused_batch_hooks
class ConfusionMatrices(L.Callback):
    """One confusion matrix per classification task and evaluation stage (labelled rows only),
    logged as ``<stage>/<task>/confusion`` at the end of every validation and test epoch; a
    test also gets one per source and task (``test/<source>/<task>/confusion``). The latest
    matrices stay in :attr:`results` (for the test report).

    The matrices are the module's own metric state (the masked confusion matrices its accuracy
    and F1 are computed from, :meth:`~mtl.training.metrics.StageMetrics.confusion_matrices`),
    read before the module logs and resets it: nothing is counted twice, and nothing waits for
    the GPU during the epoch. Reading syncs it over DDP ranks, in one collective every rank
    enters.
    """

    ALL = ""  # the key of the matrices over every source

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.tasks = {t.name: t for t in pl_module.tasks}
        self.results: dict[str, dict[tuple[str, str], torch.Tensor]] = {}

    def _log(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        matrices = pl_module.stage_metrics(stage).confusion_matrices()  # every rank: synced
        loggers = _loggers_with(trainer, "log_confusion_matrix")
        self.results[stage] = {}
        for (source, name), matrix in matrices.items():
            if source and stage != "test":  # per source: for the test report only
                continue
            matrix = matrix.cpu()  # C x C
            self.results[stage][(source, name)] = matrix
            if trainer.sanity_checking:
                continue
            key = metric_key(stage, name, "confusion", source)
            for logger in loggers:
                logger.log_confusion_matrix(
                    key, list(self.tasks[name].class_names), matrix, trainer.global_step
                )

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log("val", trainer, pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log("test", trainer, pl_module)


def write_confusion_csv(matrix: torch.Tensor, class_names: list[str], path: Path) -> None:
    """A confusion matrix as CSV: a row per actual class, a column per predicted class."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actual \\ predicted", *class_names])
        for name, row in zip(class_names, matrix.tolist(), strict=True):
            writer.writerow([name, *row])


@skip_unused_batch_hooks
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
                out = t.kind.probabilities(sample[f"out/{t.name}"][i : i + 1].float())[0]
                reading = t.kind.read(t, out.numpy())
                label = t.kind.describe(t, sample["targets"][i, j]) if sample["mask"][i, j] else ""
                if reading.confidence is None:  # a value
                    row += [label, t.kind.describe(t, float(reading.label)), None]
                else:
                    row += [label, reading.label, round(reading.confidence, 3)]
            rows.append(row)
        return columns, rows

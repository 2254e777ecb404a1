"""Loggers: a CSV logger whose history survives a resumed run, and W&B with run identity,
confusion matrices and sample predictions.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` when it logs into a version folder that
already has one, so resuming a run into its own folder (``--ckpt_path last``) loses every row
logged before the interruption. This one appends instead. When a run resumes from a checkpoint,
:meth:`CSVLogger.rewind` drops the rows logged after that checkpoint (an interrupted epoch that
the resumed run trains again), so no step is logged twice.

Both take the evaluation extras of :mod:`mtl.training.evaluation` through optional methods its
callbacks call on every logger that has them: ``log_confusion_matrix`` and ``log_predictions``.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.loggers.csv_logs import _ExperimentWriter
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers import WandbLogger as LightningWandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only

from mtl.training.evaluation import write_confusion_csv
from mtl.training.identity import RunIdentity


class AppendingWriter(ExperimentWriter):
    """Lightning's experiment writer, continuing an existing ``metrics.csv``."""

    def _check_log_dir_exists(self) -> None:  # the parent deletes metrics.csv here
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = list(csv.DictReader(f).fieldnames or [])

    def rewind(self, step: int) -> int:
        """Drop the rows logged at ``step`` or later (saved or pending); returns how many."""
        self.metrics = [row for row in self.metrics if int(row["step"]) < step]
        if not self._fs.isfile(self.metrics_file_path):
            return 0
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            rows = list(csv.DictReader(f))
        kept = [row for row in rows if row.get("step") and int(float(row["step"])) < step]
        if len(kept) < len(rows):
            with self._fs.open(self.metrics_file_path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)
        return len(rows) - len(kept)


class CSVLogger(LightningCSVLogger):
    """``lightning.pytorch.loggers.CSVLogger`` that appends to an existing history."""

    @property
    def experiment(self) -> _ExperimentWriter:
        if self._experiment is None and rank_zero_only.rank == 0:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingWriter(log_dir=self.log_dir)
        return super().experiment

    @rank_zero_only
    def rewind(self, step: int) -> None:
        """Forget the rows logged at ``step`` or later: the resumed run logs them again."""
        self.experiment.rewind(step)

    @rank_zero_only
    def log_confusion_matrix(
        self, key: str, class_names: list[str], matrix: torch.Tensor, step: int
    ) -> None:
        """The latest confusion matrix of ``key`` as ``confusion/<key>.csv`` (rows: actual)."""
        path = Path(self.log_dir) / "confusion" / f"{key.replace('/', '-')}.csv"
        write_confusion_csv(matrix, class_names, path)


def update_wandb_config(trainer: L.Trainer, values: Mapping[str, object]) -> None:
    """Merge ``values`` into the config of each W&B run ``trainer`` logs to (call on rank 0:
    only its W&B logger is a run); a value set before is replaced."""
    for logger in trainer.loggers:
        if isinstance(logger, LightningWandbLogger):
            logger.experiment.config.update(dict(values), allow_val_change=True)


class WandbLogger(LightningWandbLogger):
    """``lightning.pytorch.loggers.WandbLogger`` with what mtl's dashboards use.

    * ``group``, ``job_type`` and ``tags`` (wandb.init's) are options; those left unset are
      derived from the run (task set, backbone, weighting, fold; see :mod:`mtl.training.identity`)
      by :meth:`describe`, which the CLI calls before the run starts;
    * confusion matrices (W&B's confusion-matrix chart) and a table of sample predictions.

    Everything touching W&B runs on rank 0 only; offline mode (``offline: true`` or
    ``WANDB_MODE=offline``) needs no account or network (``wandb sync`` later).
    """

    def __init__(
        self,
        group: str | None = None,
        job_type: str | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            group: W&B run group (default: the experiment: task set, backbone, weighting).
            job_type: W&B job type (default: ``single-task`` or ``multi-task``).
            tags: W&B tags (default: job type, tasks, backbone, weighting, fold).
            **kwargs: ``lightning.pytorch.loggers.WandbLogger``'s options (project, save_dir,
                offline, id, …) and any other ``wandb.init`` argument.
        """
        given = {"group": group, "job_type": job_type, "tags": tags}
        for key in ("save_dir", "dir"):  # absolute: W&B's service process, shared by the runs
            if kwargs.get(key) is not None:  # of one Python process, has a cwd of its own
                kwargs[key] = str(Path(kwargs[key]).resolve())
        super().__init__(**kwargs, **{k: v for k, v in given.items() if v is not None})

    def describe(self, identity: RunIdentity, command: str = "fit") -> None:
        """Fill the group, job type and tags the user left unset, before the run starts. Runs
        of ``validate`` and ``test`` get their command in the job type (``multi-task:test``),
        so they do not mix with training runs on a dashboard grouped by job type."""
        init = self._wandb_init  # wandb.init's arguments, as Lightning's logger keeps them
        job_type = identity.job_type if command == "fit" else f"{identity.job_type}:{command}"
        derived = {"group": identity.group, "job_type": job_type, "tags": identity.tags}
        for key, value in derived.items():
            if init.get(key) is None:
                init[key] = value
        init["config"] = {**(init.get("config") or {}), "mtl": identity.as_config()}

    @rank_zero_only
    def log_confusion_matrix(
        self, key: str, class_names: list[str], matrix: torch.Tensor, step: int
    ) -> None:
        """``matrix[i, j]``: samples of class i predicted as j, as W&B's confusion chart."""
        import wandb

        rows = [
            [actual, predicted, int(matrix[i, j])]
            for i, actual in enumerate(class_names)
            for j, predicted in enumerate(class_names)
        ]
        table = wandb.Table(columns=["Actual", "Predicted", "nPredictions"], data=rows)
        fields = {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"}
        chart = wandb.plot_table("wandb/confusion_matrix/v1", table, fields, {"title": key})
        self.experiment.log({key: chart, "trainer/global_step": step})

    @rank_zero_only
    def log_predictions(
        self, key: str, images: torch.Tensor, columns: list[str], rows: list[list], step: int
    ) -> None:
        """A table of sample faces (``images``: N x C x H x W in [0, 1]) beside ``rows``."""
        import wandb

        faces = [wandb.Image(image.squeeze(0).numpy()) for image in images.cpu()]
        data = [[face, *row] for face, row in zip(faces, rows, strict=True)]
        table = wandb.Table(columns=["face", *columns], data=data)
        self.experiment.log({key: table, "trainer/global_step": step})


def finish_wandb() -> None:
    """End this process's W&B run, if it started one, so the process never hangs at exit and
    the next run in the same process (tests, notebooks) starts its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=0 if sys.exc_info()[0] is None else 1)

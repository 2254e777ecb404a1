"""A CSV logger whose history survives a resumed run.

Lightning's ``CSVLogger`` deletes ``metrics.csv`` when it logs into a version folder that
already has one, so resuming a run into its own folder (``--ckpt_path last``) loses every row
logged before the interruption. This one appends instead. When a run resumes from a checkpoint,
:meth:`CSVLogger.rewind` drops the rows logged after that checkpoint (an interrupted epoch that
the resumed run trains again), so no step is logged twice.
"""

from __future__ import annotations

import csv

from lightning.fabric.loggers.csv_logs import _ExperimentWriter
from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities import rank_zero_only


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

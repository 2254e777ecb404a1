"""Callbacks the CLI installs by default: config in checkpoints, a readable results table."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_only
from rich.console import Console
from rich.table import Table


class SaveConfigToCheckpoint(SaveConfigCallback):
    """Writes ``config.yaml`` to the run folder and embeds the same resolved config in every
    checkpoint (key ``"mtl_config"``), so a checkpoint alone says how it was trained."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["mtl_config"] = self.parser.dump(self.config, skip_none=False)


def metrics_table(metrics: dict, stage: str, title: str) -> Table | None:
    """A task x metric table of the ``{stage}/{task}/{metric}`` entries in ``metrics``."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == stage:
            rows.setdefault(parts[1], {})[parts[2]] = float(value)
    if not rows:
        return None
    columns = sorted({m for r in rows.values() for m in r}, key=lambda m: (m != "acc", m))
    table = Table(title=title)
    table.add_column("task")
    for col in columns:
        table.add_column(col, justify="right")
    for task, values in rows.items():
        table.add_row(task, *(f"{values[c]:.4f}" if c in values else "-" for c in columns))
    return table


class ResultsTable(L.Callback):
    """Prints the final per-task validation metrics when fitting ends."""

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        title = f"Validation after epoch {trainer.current_epoch} (step {trainer.global_step})"
        table = metrics_table(trainer.callback_metrics, "val", title)
        if table is not None:
            Console().print(table)

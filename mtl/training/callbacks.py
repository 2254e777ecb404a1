"""Callbacks the CLI installs by default: config in checkpoints, a run that resumes exactly,
and a readable results table."""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info, rank_zero_only
from rich.console import Console
from rich.table import Table

from mtl.tasks import parse_metric_key
from mtl.training.hooks import skip_unused_batch_hooks
from mtl.training.loggers import update_wandb_config


@skip_unused_batch_hooks
class SaveConfigToCheckpoint(SaveConfigCallback):
    """Writes ``config.yaml`` to the run folder, sends the same fully resolved config (data,
    model, trainer) to loggers that keep configs (W&B: ``wandb.config``), and embeds it in every
    checkpoint (key ``"mtl_config"``), so a checkpoint alone says how it was trained."""

    def save_config(
        self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str
    ) -> None:  # rank 0 only
        resolved = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        update_wandb_config(trainer, resolved)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["mtl_config"] = self.parser.dump(self.config, skip_none=False)


def random_state() -> dict[str, Any]:
    """The global random generators' states as plain data (tensors, ints, lists)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": [version, list(internal), gauss_next],
    }


def set_random_state(state: dict[str, Any]) -> None:
    """Restore what :func:`random_state` saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def run_ids(trainer: L.Trainer) -> dict[str, str]:
    """The runs this one logs to (W&B run id, CSV version folder), for ``--ckpt_path last``."""
    ids = {}
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger.version is not None:
            ids["wandb"] = str(logger.version)
        elif isinstance(logger, CSVLogger):
            version = logger.version
            ids["csv"] = version if isinstance(version, str) else f"version_{version}"
    return ids


@skip_unused_batch_hooks
class ResumeState(L.Callback):
    """What a resumed run needs beyond Lightning's own checkpoint to continue exactly.

    * the global random generators (dropout masks, anything seeded by ``seed_everything``),
      saved with every checkpoint and restored when fitting resumes from one;
    * the logged history: loggers with a ``rewind(step)`` method
      (``mtl.training.loggers.CSVLogger``) forget rows logged after the checkpoint, which the
      resumed run logs again.

    Data order and augmentation need nothing here: they derive from (seed, epoch).
    """

    KEY = "random_state"

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[self.KEY] = random_state()
        checkpoint["run_ids"] = run_ids(trainer)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        if trainer.state.fn != "fit":
            return
        if self.KEY in checkpoint:
            set_random_state(checkpoint[self.KEY])
        loop = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
        step = loop.get("_batches_that_stepped")
        if step is None:  # no training state: nothing was logged that will be again
            return
        for logger in trainer.loggers:
            rewind = getattr(logger, "rewind", None)
            if callable(rewind):
                rewind(step)
        rank_zero_info(f"resuming at epoch {checkpoint['epoch']}, step {checkpoint['global_step']}")


def metrics_table(metrics: dict, stage: str, title: str) -> Table | None:
    """A task x metric table of the ``{stage}/{task}/{metric}`` entries in ``metrics``."""
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parsed = parse_metric_key(key)
        if parsed is not None and parsed[0] == stage and not parsed[1]:  # over every source
            rows.setdefault(parsed[2], {})[parsed[3]] = float(value)
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


@skip_unused_batch_hooks
class ResultsTable(L.Callback):
    """Prints the final per-task validation metrics when fitting ends."""

    @rank_zero_only
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        title = f"Validation after epoch {trainer.current_epoch} (step {trainer.global_step})"
        table = metrics_table(trainer.callback_metrics, "val", title)
        if table is not None:
            Console().print(table)

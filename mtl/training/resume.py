"""``--ckpt_path last``: find the newest run of this experiment and continue it in place.

Checkpoints live under the first logger's run folder (``runs/mtl/version_N/checkpoints`` for
CSV, ``<save_dir>/<project>/<run id>/checkpoints`` for W&B). A resumed fit logs into the same
version folder and the same W&B run id, which every checkpoint records (``run_ids``, written
by :class:`mtl.training.callbacks.ResumeState`), so a run logging to CSV and W&B
together resumes both.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from jsonargparse import Namespace
from lightning.pytorch.utilities import rank_zero_warn

from mtl.errors import UserError


def _is_wandb(logger: Namespace) -> bool:
    return str(logger.get("class_path", "")).endswith("WandbLogger")


def _loggers(config: Namespace) -> list[Namespace]:
    logger = config.trainer.get("logger")
    loggers = logger if isinstance(logger, list) else [logger]
    return [lg for lg in loggers if isinstance(lg, Namespace) and "init_args" in lg]


def _runs_root(logger: Namespace) -> Path | None:
    """The folder holding one sub-folder per run of this logger's experiment."""
    init = logger.init_args
    if _is_wandb(logger):
        return Path(init.get("save_dir") or ".") / (init.get("project") or "lightning_logs")
    if init.get("save_dir") is None:
        return None
    return Path(init.save_dir) / (init.get("name") or "")


def resolve_last_checkpoint(config: Namespace, fit: bool = True) -> None:
    """Turn ``ckpt_path: last`` into the newest ``last.ckpt`` of this experiment, in place.

    With no earlier checkpoint, fit starts from scratch with a warning (so ``--ckpt_path last``
    is safe in a job script that may or may not have run before); the other commands need one.
    """
    loggers = _loggers(config)
    root = _runs_root(loggers[0]) if loggers else None
    if root is None:
        return  # leave "last" to Lightning's own lookup
    candidates = sorted(root.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        if not fit:
            raise UserError(f"--ckpt_path last: no last.ckpt under {root}")
        rank_zero_warn(f"--ckpt_path last: no last.ckpt under {root}; training from scratch")
        config.ckpt_path = None
        return
    newest = candidates[-1]
    config.ckpt_path = str(newest)
    if fit:
        continue_runs(loggers, newest)


def continue_runs(loggers: list[Namespace], checkpoint: Path) -> None:
    """Point every logger at the run the checkpoint belongs to."""
    folder = checkpoint.parent.parent.name  # the first logger's run
    saved = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=True)
    ids = saved.get("run_ids", {})
    for i, logger in enumerate(loggers):
        if _is_wandb(logger):
            run_id = ids.get("wandb") or (folder if i == 0 else None)
            if run_id:
                logger.init_args.id = run_id
                logger.dict_kwargs = {**(logger.get("dict_kwargs") or {}), "resume": "allow"}
        elif "version" in logger.init_args:
            version = ids.get("csv") or (folder if i == 0 else None)
            if version is not None:
                logger.init_args.version = version


def trained_precision(checkpoint: str | Path | None) -> str | None:
    """The ``trainer.precision`` a checkpoint was trained in (its embedded config), so a resumed
    fit or a test of it keeps the precision instead of choosing anew; None when the path is not
    a file (``best``, nothing) or the checkpoint does not say."""
    if checkpoint is None or not Path(checkpoint).is_file():
        return None
    saved = torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=True)
    try:
        config = yaml.safe_load(saved.get("mtl_config") or "") or {}
        value = (config.get("trainer") or {}).get("precision")
    except (yaml.YAMLError, AttributeError):
        return None
    return None if value is None else str(value)

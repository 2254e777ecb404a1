"""The ``mtl`` command: LightningCLI's fit/validate/test/predict with project defaults.

``mtl fit --config conf/bknet.yaml --model.weighting=FixedWeighting --trainer.max_epochs=5``
is exactly what a W&B sweep agent passes with ``${args}``. Unknown keys and wrong types are
rejected before anything is built, naming the key, with exit status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path

from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_warn

from mtl.callbacks import ResultsTable, SaveConfigToCheckpoint
from mtl.commands import COMMANDS
from mtl.data.datamodule import FaceDataModule
from mtl.module import MultiTaskModule

RUNS_DIR = "runs"


class MTLCLI(LightningCLI):
    """LightningCLI wired for multi-task runs: data decides the tasks, the model follows."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.task_names", "model.tasks", apply_on="instantiate")
        parser.link_arguments("data.age_edges", "model.age_edges", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        super().parse_arguments(parser, args)
        sub = self.config.get("subcommand")
        if sub == "fit" and self.config[sub].get("ckpt_path") == "last":
            resolve_last_checkpoint(self.config[sub])


def _logger_dir(logger: object) -> Path | None:
    """``save_dir/name`` of a configured CSV/TensorBoard-style logger, else None."""
    if not isinstance(logger, Namespace) or "init_args" not in logger:
        return None
    init = logger.init_args
    if init.get("save_dir") is None:
        return None
    return Path(init.save_dir) / (init.get("name") or "")


def resolve_last_checkpoint(config: Namespace) -> None:
    """Turn ``ckpt_path: last`` into the newest ``last.ckpt`` of this experiment, in place.

    The resumed run logs into the same version folder it continues. With no earlier
    checkpoint, training starts from scratch with a warning (so ``--ckpt_path last`` is safe
    in a job script that may or may not have run before).
    """
    logger = config.trainer.get("logger")
    root = _logger_dir(logger)
    if root is None:
        return  # leave "last" to Lightning's own lookup
    candidates = sorted(root.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        rank_zero_warn(f"--ckpt_path last: no last.ckpt under {root}; training from scratch")
        config.ckpt_path = None
        return
    newest = candidates[-1]
    config.ckpt_path = str(newest)
    logger.init_args.version = newest.parent.parent.name


def trainer_defaults() -> dict:
    return {
        "default_root_dir": RUNS_DIR,
        "logger": {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": RUNS_DIR, "name": "mtl"},
        },
        "callbacks": [
            ModelCheckpoint(
                save_last=True, filename="epoch{epoch:03d}", auto_insert_metric_name=False
            ),
            ResultsTable(),
        ],
    }


def run_cli(args: ArgsType = None) -> MTLCLI:
    """Build (and run) the CLI; returns it so tests can inspect the model, data and trainer."""
    return MTLCLI(
        MultiTaskModule,
        FaceDataModule,
        subclass_mode_data=True,
        save_config_callback=SaveConfigToCheckpoint,
        save_config_kwargs={"overwrite": True},
        trainer_defaults=trainer_defaults(),
        seed_everything_default=0,
        args=args,
    )


def main(args: ArgsType = None) -> None:
    """Entry point of ``mtl`` and ``python -m mtl``; ``args`` lets tests call it in-process.

    ``prepare`` and ``bench`` are dispatched to :mod:`mtl.commands` (they build no model or
    trainer); everything else goes to LightningCLI. Non-zero statuses exit the process.
    """
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in COMMANDS:
        status = COMMANDS[argv[0]](argv[1:])
        if status:
            raise SystemExit(status)
        return
    run_cli(args)

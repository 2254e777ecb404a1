"""The ``mtl`` command: LightningCLI's fit/validate/test/predict with project defaults, beside the
project's own commands (:data:`mtl.cli.commands.COMMANDS`: ``prepare``, ``bench``, ``models``,
``sweep``, ``cv``, ``report``, ``dashboard``, ``analyze``, ``export``).

``mtl fit --config conf/bknet.yaml --model.weighting=FixedWeighting --trainer.max_epochs=5``
is exactly what a W&B sweep agent passes with ``${args}``. Unknown keys and wrong types are
rejected before anything is built, naming the key, with exit status 2 and without the usage text
(:mod:`mtl.cli.parsing`); so are values the classes refuse (a task the data does not label,
a negative batch size …) and settings that contradict each other, each as one line instead of a
traceback. ``--trainer.logger=WandbLogger`` names the project's W&B logger, as a Lightning user
expects.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Sequence

import yaml
from jsonargparse import Namespace
from jsonargparse.typing import NonNegativeInt
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.trainer.states import TrainerStatus
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from mtl import __version__
from mtl.cli.commands import COMMANDS
from mtl.cli.console import quiet_console
from mtl.cli.parsing import (
    ArgumentParser,
    ConciseErrors,
    expand_class_aliases,
    normalize_agent_args,
)
from mtl.data import FaceDataModule
from mtl.errors import UserError
from mtl.training import precision
from mtl.training.callbacks import SaveConfigToCheckpoint
from mtl.training.defaults import default_callbacks
from mtl.training.identity import RunIdentity
from mtl.training.loggers import finish_wandb
from mtl.training.module import MultiTaskModule
from mtl.training.resume import resolve_last_checkpoint, trained_precision
from mtl.training.settings import settings_digest
from mtl.training.summary import RunSummary

RUNS_DIR = "runs"
TRAINER_COMMANDS = tuple(LightningCLI.subcommands())  # fit, validate, test, predict
TRAINER_HELP = {
    "fit": "Train a model (and validate it every epoch); --ckpt_path last resumes a run.",
    "validate": "Evaluate a model or checkpoint on the validation split of every source.",
    "test": "Evaluate a model or checkpoint on the test split of every source.",
    "predict": "Predict every task's probabilities with a model or checkpoint.",
}


RUN_SETTINGS = ("test_time_flip", "compile", "compile_mode", "channels_last")
"""Model arguments that say how a trained network runs, not what it is (its weights fit either
value). Lightning builds the model of a ``--ckpt_path`` run from the checkpoint's arguments,
over the command line's and the config files' (Lightning-AI/pytorch-lightning#21455 is open);
one of these that the run asks for (:func:`asked_run_settings`) is kept, so ``mtl test
--ckpt_path X --model.test_time_flip true`` flips."""


def asked_run_settings(command_line: Sequence[str], model: Namespace) -> dict[str, object]:
    """The :data:`RUN_SETTINGS` a run asks for, with their parsed values: those named on the
    command line (``--model.K=V`` or ``--model.K V``) and those a config file sets to other
    than the module's default (a config cannot ask for the default over a checkpoint's value:
    the command line can)."""
    flags = [a.split("=")[0] for a in command_line if a.startswith("--model.")]
    named = {flag.removeprefix("--model.") for flag in flags}
    defaults = inspect.signature(MultiTaskModule).parameters
    return {
        k: model.get(k) for k in RUN_SETTINGS if k in named or model.get(k) != defaults[k].default
    }


class MTLArgumentParser(ConciseErrors, LightningArgumentParser):
    """LightningCLI's parser, with one-message errors."""


class MTLCLI(LightningCLI):
    """LightningCLI wired for multi-task runs: data decides the tasks, the model follows."""

    _run_settings: dict[str, object] = {}  # asked for (RUN_SETTINGS); set by parse_arguments

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.task_names", "model.tasks", apply_on="instantiate")
        parser.link_arguments("data.age_edges", "model.age_edges", apply_on="instantiate")
        # Accepted by every command, so a run's saved config.yaml replays under test too.
        parser.add_argument(
            "--test_after_fit",
            type=bool,
            default=False,
            help="fit only: test the final model (and the ensemble) in the same run",
        )
        parser.add_argument(
            "--ensemble",
            type=NonNegativeInt,
            default=0,
            help="keep the last N epochs' weights and test their averaged softmax beside the "
            "final model (the papers: 10); 0: off",
        )

    def after_fit(self) -> None:
        """``--test_after_fit``: the final model's test, logged to the same run; not after a
        fit that was interrupted (Ctrl-C), which must not look finished."""
        finished = self.trainer.state.status == TrainerStatus.FINISHED
        if self.config.fit.get("test_after_fit") and finished and not self.trainer.interrupted:
            # verbose=False: the run's own test table (RunSummary) is the one printed
            self.trainer.test(self.model, datamodule=self.datamodule, verbose=False)

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        if args is None:  # from the console (DDP ranks re-run sys.argv: keep it expanded)
            sys.argv[1:] = expand_class_aliases(sys.argv[1:])
        elif isinstance(args, list):
            args = expand_class_aliases(args)
        super().parse_arguments(parser, args)
        sub = self.config.get("subcommand")
        if sub and self.config[sub].get("ckpt_path") == "last":
            resolve_last_checkpoint(self.config[sub], fit=sub == "fit")
        model = self.config[sub].get("model") if sub else None
        if model is not None:
            command_line = sys.argv[1:] if args is None else args
            tokens = command_line if isinstance(command_line, list) else []  # a dict: a config
            self._run_settings = asked_run_settings(tokens, model)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.config.subcommand] if self.config.get("subcommand") else None
        for key, value in self._run_settings.items():  # over the checkpoint's (RUN_SETTINGS)
            config.model[key] = value
        trainer = config.trainer if config is not None else Namespace()
        ensemble = config.get("ensemble", 0) if config is not None else 0
        self.trainer_defaults["callbacks"] = default_callbacks(trainer, ensemble)
        if self.config.get("subcommand") == "test":  # the run's own table (RunSummary) instead
            config.verbose = False
        if config is not None and trainer.get("precision") is None:
            trained = trained_precision(config.get("ckpt_path"))
            if trained is not None:  # a resume or a test keeps the checkpoint's precision
                rank_zero_info(f"mtl: precision {trained}, as the checkpoint was trained")
            trainer.precision = trained or default_precision(trainer.get("accelerator"))

    def after_instantiate_classes(self) -> None:
        """Loggers that name runs (W&B: group, job type, tags) and ``run.json`` learn what this
        run is, its settings' digest included (:meth:`_settings_digest`)."""
        settings = self._settings_digest()
        identity = RunIdentity.of(self.model, self.datamodule, settings)
        for logger in self.trainer.loggers:
            describe = getattr(logger, "describe", None)
            if callable(describe):
                describe(identity, self.subcommand or "fit")
        for callback in self.trainer.callbacks:
            if isinstance(callback, RunSummary):
                callback.settings = settings

    def _settings_digest(self) -> str | None:
        """The digest of this run's settings (:func:`~mtl.training.settings.settings_digest`)
        of the config its folder saves, as ``mtl report`` reads it: a test of a checkpoint run
        with the fit's ``config.yaml`` joins the fit's group and row. None, with a warning,
        where the config cannot be dumped: a group is a label, never a reason to fail a run."""
        sub = self.subcommand
        if sub is None:
            return None
        try:
            config = yaml.safe_load(self._parser(sub).dump(self.config[sub], skip_none=False))
            return settings_digest(config)
        except Exception as err:  # any failure: the run goes on, unlabelled
            rank_zero_warn(
                f"mtl: the run's group has no settings digest ({type(err).__name__}: {err})"
            )
            return None

    def instantiate_classes(self) -> None:
        """Build data, model and trainer; a value a class refuses is the user's to fix."""
        try:
            super().instantiate_classes()
        except (ValueError, FileNotFoundError) as err:
            raise UserError(f"invalid configuration: {_first_cause(err)}") from err


def default_precision(accelerator: str | None) -> str:
    """The precision of a run that names none: chosen for this machine
    (:mod:`mtl.training.precision`), said once on the console. The saved config records it, so a
    replay or resume keeps it."""
    choice = precision.resolve(accelerator)
    other = precision.FP32 if choice.precision != precision.FP32 else precision.BF16
    rank_zero_info(
        f"mtl: precision {choice.precision} ({choice.reason}); "
        f"--trainer.precision={other} to change it"
    )
    return choice.precision


def _first_cause(err: BaseException) -> BaseException:
    """The exception that started a chain (jsonargparse wraps a class's own error in several
    lines about union types; the class's one line is what the user needs). A context the
    raiser suppressed (``raise ... from None``) is not followed."""
    while True:
        inner = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
        if inner is None:
            return err
        err = inner


def trainer_defaults() -> dict:
    return {
        "default_root_dir": RUNS_DIR,
        "logger": {
            "class_path": "mtl.training.loggers.CSVLogger",
            "init_args": {"save_dir": RUNS_DIR, "name": "mtl"},
        },
        "profiler": {"class_path": "mtl.training.profiler.NoProfiler"},
    }


def run_cli(args: ArgsType = None) -> MTLCLI:
    """Build (and run) the CLI; returns it so tests can inspect the model, data and trainer."""
    return MTLCLI(
        MultiTaskModule,
        FaceDataModule,
        subclass_mode_data=True,
        save_config_callback=SaveConfigToCheckpoint,
        save_config_kwargs={"overwrite": True},
        parser_class=MTLArgumentParser,
        parser_kwargs={"prog": "mtl"},  # also under ``python -m mtl`` and in tests
        trainer_defaults=trainer_defaults(),
        seed_everything_default=0,
        args=args,
    )


def overview_parser() -> ArgumentParser:
    """``mtl --help``: every command with its one-line description."""
    parser = ArgumentParser(
        prog="mtl",
        description="Multi-source, multi-task face-attribute learning (smile, emotion, gender, "
        "age). `mtl COMMAND --help` shows a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"mtl {__version__}")
    commands = parser.add_subcommands(metavar="COMMAND")
    helps = TRAINER_HELP | {name: command.help for name, command in COMMANDS.items()}
    for name, doc in helps.items():  # each command parses its own options
        commands.add_subcommand(name, ArgumentParser(description=doc), help=doc)
    return parser


def main(args: ArgsType = None) -> None:
    """Entry point of ``mtl`` and ``python -m mtl``; ``args`` lets tests call it in-process.

    The project's commands go to :mod:`mtl.cli.commands` (each parses its own options); the
    trainer commands go to LightningCLI. A :class:`UserError` or a Lightning
    configuration error ends the process with one line on stderr and status 2
    (``MTL_TRACEBACK=1`` shows the traceback instead).
    """
    argv = normalize_agent_args(list(sys.argv[1:] if args is None else args))
    with quiet_console():
        _run(argv, from_console=args is None)


def _run(argv: list[str], from_console: bool) -> None:
    try:
        if argv and argv[0] in COMMANDS:
            status = COMMANDS[argv[0]].run(argv[1:])
            if status:
                raise SystemExit(status)
        elif argv and (argv[0] in TRAINER_COMMANDS or argv[0] in ("-c", "--config")):
            if from_console:  # DDP re-runs sys.argv on the other ranks
                sys.argv[1:] = argv
            run_cli(None if from_console else argv)
        else:
            overview_parser().parse_args(argv or ["--help"])
    except (UserError, MisconfigurationException) as err:
        if os.environ.get("MTL_TRACEBACK"):
            raise
        print(f"mtl: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        finish_wandb()

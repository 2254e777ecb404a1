"""``mtl cv --config … [--folds 4]``: k-fold cross-validation of one config, as the papers do it.

Each fold is an ``mtl fit`` of the same config with ``--data.k_folds K --data.val_fold F
--test_after_fit true``: trained on the other folds of every source's k-fold pool, validated on
the held-out fold, then tested (on the dataset's official test split where it has one, FER-2013's
PublicTest and PrivateTest reported apart; on the held-out fold otherwise; see
:mod:`mtl.data.splits`). Folds run one after another as subprocesses (so a fold may itself be a
multi-GPU run), each in ``OUT/foldF/logs``; a fold that finished is not run again when the
same command is repeated, an interrupted one (or one run with other options) is run afresh.
The end is ``mtl report`` over the folds: mean ± std per task and source, for the final model
and the checkpoint ensemble (``--ensemble N``).

Every option this command does not know goes to ``mtl fit`` unchanged. To run folds as
independent jobs (a sweep over ``data.val_fold``, a cluster array), run ``mtl fit … --data.val_fold
F --test_after_fit true`` per fold and ``mtl report`` over their folders; with W&B on, the folds
of one experiment share a W&B group.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path

from rich.console import Console

from mtl.commands import COMMANDS
from mtl.commands.parsing import CommandArgumentParser
from mtl.commands.report import report as write_report
from mtl.run_report import RUN_FILE
from mtl.sweep.command import with_trial_loggers

HELP = COMMANDS["cv"].help


def build_parser() -> argparse.ArgumentParser:
    parser = CommandArgumentParser(  # not jsonargparse: options it does not know go to fit
        prog="mtl cv",
        allow_abbrev=False,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Any other option (--config, --trainer.max_epochs, --ensemble …) goes to mtl fit.",
    )
    parser.add_argument("--folds", type=int, default=4, help="k of the k-fold (default 4)")
    parser.add_argument(
        "--fold", type=int, nargs="+", default=None, help="run only these folds (default all)"
    )
    parser.add_argument("--out", type=Path, default=None, help="default runs/cv/<config name>")
    parser.add_argument(
        "--wandb",
        choices=("off", "offline", "online"),
        default="off",
        help="also log every fold to W&B (offline: `wandb sync` later); folds share a group",
    )
    parser.add_argument("--project", default="mtl", help="W&B project")
    return parser


def config_name(fit_args: list[str]) -> str:
    """The stem of the last ``--config`` file given to fit (``cv`` without one)."""
    name = "cv"
    for i, arg in enumerate(fit_args):
        if arg in ("-c", "--config") and i + 1 < len(fit_args):
            name = Path(fit_args[i + 1]).stem
        elif arg.startswith("--config="):
            name = Path(arg.split("=", 1)[1]).stem
    return name


COMMAND_FILE = "command.json"
"""A fold's command line, kept in its folder: a fold counts as done only for the same one."""


def finished(folder: Path, argv: list[str]) -> bool:
    """Whether a fold ran this command line as far as its test results."""
    run, command = folder / "logs" / RUN_FILE, folder / COMMAND_FILE
    try:
        same = json.loads(command.read_text()) == argv
        return same and bool(json.loads(run.read_text()).get("test"))
    except (OSError, ValueError):
        return False


def fold_command(
    fit_args: list[str], k: int, fold: int, folder: Path, wandb: str, project: str
) -> list[str]:
    """``mtl fit`` of one fold, tested when it ends, logging into ``folder``."""
    argv = ["mtl", "fit", *fit_args, f"--data.k_folds={k}", f"--data.val_fold={fold}"]
    argv.append("--test_after_fit=true")
    name = f"{folder.parent.name}-fold{fold}"
    return with_trial_loggers(argv, folder, wandb, project, None, name)


def main(argv: list[str]) -> int:
    args, fit_args = build_parser().parse_known_args(argv)
    if args.folds < 2:
        raise SystemExit("mtl cv: error: --folds must be >= 2")
    folds = args.fold if args.fold is not None else list(range(args.folds))
    out: Path = args.out or Path("runs/cv") / config_name(fit_args)
    console = Console(stderr=True)
    env = dict(os.environ)
    if args.wandb != "off":
        env["WANDB_MODE"] = args.wandb

    def command(fold: int) -> list[str]:
        folder = out / f"fold{fold}"
        return fold_command(fit_args, args.folds, fold, folder, args.wandb, args.project)

    failed = []
    for fold in folds:
        folder, argv = out / f"fold{fold}", command(fold)
        if finished(folder, argv):
            console.print(f"[green]fold {fold}: done earlier with the same command ({folder})")
            continue
        shutil.rmtree(folder, ignore_errors=True)  # interrupted, or another command: afresh
        folder.mkdir(parents=True)
        (folder / COMMAND_FILE).write_text(json.dumps(argv))
        console.rule(f"fold {fold} of {args.folds}")
        done = subprocess.run(argv, env=env)
        if done.returncode != 0:
            console.print(f"[red]fold {fold} failed (exit status {done.returncode})")
            failed.append(fold)
    # The folds this command finished (not those another command left in `out`).
    done = [out / f"fold{f}" for f in range(args.folds)]
    done = [folder for f, folder in enumerate(done) if finished(folder, command(f))]
    if done:
        write_report([str(folder) for folder in done], out, metrics=["acc", "mae"])
    if failed:
        console.print(f"[red]folds {failed} failed; run the same command again to retry them")
        return 1
    return 0

"""k-fold cross-validation of one config, as the papers do it (``mtl cv``).

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

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from mtl.experiments.report.build import build_report
from mtl.experiments.sweep.command import with_trial_loggers
from mtl.tasks import KINDS
from mtl.training.run_file import RUN_FILE


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


def run_folds(
    fit_args: Sequence[str],
    out: Path,
    k: int,
    folds: Sequence[int],
    wandb: str = "off",
    project: str = "mtl",
) -> list[int]:
    """Fit and test ``folds`` of a ``k``-fold one after another (a fold finished earlier with
    the same command is kept), then report the finished ones; returns the folds that failed."""
    console = Console(stderr=True)
    env = dict(os.environ)
    if wandb != "off":
        env["WANDB_MODE"] = wandb

    def command(fold: int) -> list[str]:
        return fold_command(list(fit_args), k, fold, out / f"fold{fold}", wandb, project)

    failed = []
    for fold in folds:
        folder, argv = out / f"fold{fold}", command(fold)
        if finished(folder, argv):
            console.print(f"[green]fold {fold}: done earlier with the same command ({folder})")
            continue
        shutil.rmtree(folder, ignore_errors=True)  # interrupted, or another command: afresh
        folder.mkdir(parents=True)
        (folder / COMMAND_FILE).write_text(json.dumps(argv))
        console.rule(f"fold {fold} of {k}")
        done = subprocess.run(argv, env=env)
        if done.returncode != 0:
            console.print(f"[red]fold {fold} failed (exit status {done.returncode})")
            failed.append(fold)
    # The folds this command finished (not those another command left in `out`).
    done = [out / f"fold{f}" for f in range(k)]
    done = [folder for f, folder in enumerate(done) if finished(folder, command(f))]
    if done:
        qualities = sorted({kind.quality.name for kind in KINDS.values()})  # acc, mae
        build_report([str(folder) for folder in done], out, metrics=qualities)
    if failed:
        console.print(f"[red]folds {failed} failed; run the same command again to retry them")
    return failed

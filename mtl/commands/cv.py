"""``mtl cv --config … [--folds 4]``: k-fold cross-validation of one config, as the papers do it.

Each fold is an ``mtl fit`` of the same config with ``--data.k_folds K --data.val_fold F
--test_after_fit true``: trained on the other folds of every source's k-fold pool, validated on
the held-out fold, then tested (on the dataset's official test split where it has one, FER-2013's
PublicTest and PrivateTest reported apart; on the held-out fold otherwise; see
:mod:`mtl.data.splits`). Folds run one after another as subprocesses (so a fold may itself be a
multi-GPU run), each in ``OUT/foldF/logs``; a fold that finished is not run again when the
command is repeated, an interrupted one is run afresh. The end is ``mtl report`` over the folds:
mean ± std per task and source, for the final model and the checkpoint ensemble
(``--ensemble N``).

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

from mtl.commands.report import report as write_report
from mtl.run_report import RUN_FILE
from mtl.sweep.command import with_trial_loggers

HELP = "k-fold cross-validation of a config: every fold fitted and tested, then mean ± std."


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtl cv",
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


def finished(folder: Path) -> bool:
    """Whether a fold's run got as far as its test results."""
    path = folder / "logs" / RUN_FILE
    return path.is_file() and bool(json.loads(path.read_text()).get("test"))


def fold_command(fit_args: list[str], k: int, fold: int, folder: Path, args) -> list[str]:
    argv = ["mtl", "fit", *fit_args, f"--data.k_folds={k}", f"--data.val_fold={fold}"]
    argv.append("--test_after_fit=true")
    name = f"{folder.parent.name}-fold{fold}"
    return with_trial_loggers(argv, folder, args.wandb, args.project, None, name)


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
    failed = []
    for fold in folds:
        folder = out / f"fold{fold}"
        if finished(folder):
            console.print(f"[green]fold {fold}: done earlier ({folder})")
            continue
        shutil.rmtree(folder, ignore_errors=True)  # an interrupted fold starts afresh
        console.rule(f"fold {fold} of {args.folds}")
        done = subprocess.run(fold_command(fit_args, args.folds, fold, folder, args), env=env)
        if done.returncode != 0:
            console.print(f"[red]fold {fold} failed (exit status {done.returncode})")
            failed.append(fold)
    summary = argparse.Namespace(
        runs=[str(out)], out=out, stage="test", metrics=["acc", "mae"], references=False,
        reference_file=None,
    )  # fmt: skip
    if len(failed) < len(folds):
        write_report(summary)
    if failed:
        console.print(f"[red]folds {failed} failed; run the same command again to retry them")
        return 1
    return 0

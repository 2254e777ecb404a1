"""``mtl cv --config … [--folds 4]``: k-fold cross-validation of one config, as the papers do it
(:mod:`mtl.experiments.cv`).

Every option this command does not know goes to ``mtl fit`` unchanged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mtl.cli.commands import COMMANDS
from mtl.cli.parsing import CommandArgumentParser
from mtl.experiments import cv

HELP = COMMANDS["cv"].help


def build_parser() -> argparse.ArgumentParser:
    parser = CommandArgumentParser(  # not jsonargparse: options it does not know go to fit
        prog="mtl cv",
        allow_abbrev=False,
        description=cv.__doc__,
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


def main(argv: list[str]) -> int:
    args, fit_args = build_parser().parse_known_args(argv)
    if args.folds < 2:
        raise SystemExit("mtl cv: error: --folds must be >= 2")
    folds = args.fold if args.fold is not None else list(range(args.folds))
    out: Path = args.out or Path("runs/cv") / cv.config_name(fit_args)
    failed = cv.run_folds(fit_args, out, args.folds, folds, args.wandb, args.project)
    return 1 if failed else 0

"""``mtl sweep sweeps/<file>.yaml``: run a W&B sweep file with no W&B server.

Grid and random search as W&B defines them, bayes with Optuna's TPE, ``run_cap``, the metric's
name and goal, and W&B's hyperband early stopping (:mod:`mtl.experiments.sweep.hyperband`).
Start the same command in several terminals or on several machines (with ``--storage`` an RDB
URL) and the workers share the sweep; stop and start it again and finished trials stay done.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Literal

from jsonargparse import ActionConfigFile
from rich.console import Console

from mtl.cli.commands import COMMANDS
from mtl.cli.parsing import ArgumentParser
from mtl.experiments.sweep import results
from mtl.experiments.sweep.config import SweepConfig
from mtl.experiments.sweep.runner import SweepRunner

HELP = COMMANDS["sweep"].help


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="mtl sweep", description=__doc__)
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="options from a file")
    parser.add_argument("file", type=Path, help="a W&B sweep file, e.g. sweeps/backbones.yaml")
    parser.add_argument(
        "--storage",
        type=str | None,
        default=None,
        help="Optuna storage: journal:<path> (one host) or an RDB URL such as "
        "postgresql+psycopg://user:pass@host/db (several machines); default: a journal in --out",
    )
    parser.add_argument("--count", type=int | None, default=None, help="trials for this worker")
    parser.add_argument("--out", type=Path, default=Path("runs/sweeps"), help="trial folders")
    parser.add_argument(
        "--wandb",
        type=Literal["offline", "online", "off"],
        default="offline",
        help="log trials to W&B (offline: `wandb sync` later), grouped by the sweep's name",
    )
    parser.add_argument("--project", type=str, default="mtl", help="W&B project")
    parser.add_argument("--seed", type=int, default=0, help="seed of random and bayes draws")
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between metric reads")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    config = SweepConfig.load(args.file)
    console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)  # logs: wide
    folder = args.out / config.name
    storage = args.storage or f"journal:{folder / 'study.journal'}"
    runner = SweepRunner(
        config,
        storage,
        args.out,
        wandb=args.wandb,
        project=args.project,
        seed=args.seed,
        poll_s=args.poll,
        echo=console.print,
    )
    # a kill, a scheduler's time limit or a closed terminal stops the running trial too (it
    # runs in its own session, so it would not get those signals), and its point runs again
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    status = 0
    try:
        runner.run(args.count)
    except KeyboardInterrupt:
        console.print("[yellow]sweep interrupted: the running trial was stopped; run the same "
                      "command again to go on[/]")  # fmt: skip
        status = 130
    console.print(results.table(runner.study, config))
    best = results.write(runner.study, config, folder)
    console.print(f"trials: {folder / 'trials.csv'}")
    if best is not None:
        console.print(f"best: {best} (add it as a --config after the sweep's own)")
    return status

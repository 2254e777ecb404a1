"""Commands beside LightningCLI's fit/validate/test/predict: ``mtl prepare``, ``mtl bench``,
``mtl models``, ``mtl sweep``, ``mtl cv``, ``mtl report``, ``mtl dashboard``.

Each takes options the way ``mtl fit`` does (jsonargparse: typed ``--key value`` options,
``--config`` files, ``--help``) and returns an exit status; ``mtl cv`` passes every option it
does not know on to ``mtl fit``, so it parses its own few with argparse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mtl.commands import bench, cv, dashboard, models, prepare, report, sweep


@dataclass(frozen=True)
class Command:
    """One ``mtl`` command: its one-line help and what runs it (it parses its own options)."""

    help: str
    run: Callable[[list[str]], int]


COMMANDS: dict[str, Command] = {
    "prepare": Command(prepare.HELP, prepare.main),
    "bench": Command(bench.HELP, bench.main),
    "models": Command(models.HELP, models.main),
    "sweep": Command(sweep.HELP, sweep.main),
    "cv": Command(cv.HELP, cv.main),
    "report": Command(report.HELP, report.main),
    "dashboard": Command(dashboard.HELP, dashboard.main),
}

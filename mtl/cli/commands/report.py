"""``mtl report RUNS…``: finished runs compared in the papers' table layout.

RUNS are run folders or folders holding many (searched recursively: local runs with ``run.json``,
W&B offline runs ``run-<id>.wandb``), or ``wandb:ENTITY/PROJECT`` (W&B's public API, online).
Rows are experiments (task set, backbone, weighting, loss; final model or checkpoint ensemble),
named by what differs between them; columns task · source; cells mean ± std (number of runs)
over folds and seeds; multi-task rows get their difference to single-task, paired by fold and
data seed with its 95 % confidence interval, and LibMTL's Δm. Writes ``report.md``, ``report.csv``,
``bars.png``, ``curves.png`` and (with a paired difference) ``deltas.png`` to ``--out``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from jsonargparse import ActionConfigFile

from mtl.cli.commands import COMMANDS
from mtl.cli.parsing import ArgumentParser
from mtl.experiments.report.build import build_report
from mtl.tasks import METRICS

HELP = COMMANDS["report"].help


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="mtl report", description=__doc__)
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="options from a file")
    parser.add_argument("runs", type=str, nargs="+", help="run folders or wandb:ENTITY/PROJECT")
    parser.add_argument("--out", type=Path, default=Path("runs/report"), help="output folder")
    parser.add_argument(
        "--stage",
        type=Literal["test", "val"],
        default="test",
        help="test results (final model and ensemble), or the last validation epoch",
    )
    parser.add_argument(
        "--metrics", type=list[str], default=["acc"], help=f"metrics shown: {', '.join(METRICS)}"
    )
    parser.add_argument(
        "--references",
        type=bool,
        default=False,
        help="show the papers' published figures beside the measured ones",
    )
    parser.add_argument(
        "--reference_file", type=Path | None, default=None, help="other reference figures (YAML)"
    )
    parser.add_argument(
        "--baseline_ignoring",
        type=list[str],
        default=[],
        help="config keys (with their arguments) in which a multi-task row's single-task row "
        "may differ where none matches on every key, e.g. '[trainer.max_epochs, "
        "model.lr_scheduler]' for schedules chosen per task set; each such pairing is listed",
    )
    parser.add_argument(
        "--into",
        type=Path | None,
        default=None,
        help="also write the tables and plots into this Markdown file, between its "
        "'<!-- mtl report: ... -->' marker lines (docs/results.md)",
    )
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    build_report(
        args.runs,
        args.out,
        args.stage,
        args.metrics,
        args.references,
        args.reference_file,
        args.into,
        args.baseline_ignoring,
    )
    return 0

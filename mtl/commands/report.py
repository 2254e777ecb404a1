"""``mtl report RUNS…``: finished runs compared in the papers' table layout.

RUNS are run folders or folders holding many (searched recursively: local runs with ``run.json``,
W&B offline runs ``run-<id>.wandb``), or ``wandb:ENTITY/PROJECT`` (W&B's public API, online).
Rows are experiments (task set, backbone, weighting, loss; final model or checkpoint ensemble),
named by what differs between them; columns task · source; cells mean ± std (number of runs)
over folds and seeds; multi-task rows get their difference to single-task and LibMTL's Δm.
Writes ``report.md``, ``report.csv``, ``bars.png`` and ``curves.png`` to ``--out``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from jsonargparse import ActionConfigFile, ArgumentParser
from rich.console import Console

from mtl.errors import UserError
from mtl.report import render
from mtl.report.runs import find_runs
from mtl.report.table import all_columns, experiments

HELP = "Compare finished runs (folders, W&B offline runs, a W&B project) in the papers' tables."


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
        "--metrics", type=list[str], default=["acc"], help="metrics shown: acc, f1, mae"
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
    return parser


def report(args) -> str:
    """Build the report from parsed options; returns its Markdown (files written to out)."""
    runs = find_runs(args.runs)
    found = experiments(runs, args.stage, args.metrics)
    if not found:
        raise UserError(f"no finished runs with {args.stage} results under {' '.join(args.runs)}")
    columns = all_columns(found)
    references = []
    if args.references or args.reference_file:
        references = render.relevant(render.load_references(args.reference_file), columns)
    rows = render.table_rows(found, references, columns)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    note = (
        f"{len(runs)} runs; cells: mean ± sample std (number of runs) of {args.stage} "
        f"{'/'.join(args.metrics)} in %, over folds and seeds; Δm: LibMTL's mean relative "
        "multi-task gain over single-task."
    )
    if references:
        note += "\n\nPapers' figures (their data and protocol differ; see each source):\n\n"
        note += "\n".join(f"- {r.label}: {r.source}" for r in references)
    text = render.markdown(rows, columns, note)
    (out / "report.md").write_text(text)
    render.write_csv(out / "report.csv", found)
    render.bar_chart(out / "bars.png", found, references, columns)
    render.curves_chart(out / "curves.png", found)
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(render.rich_table(rows, columns, f"{args.stage} results ({len(runs)} runs)"))
    console.print(f"written: {out}/report.md, report.csv, bars.png, curves.png")
    return text


def main(argv: list[str]) -> int:
    report(build_parser().parse_args(argv))
    return 0

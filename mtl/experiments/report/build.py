"""One report of finished runs: the papers' table (Markdown, console, CSV), its plots, and
optionally the same block spliced into a Markdown document. ``mtl report`` and ``mtl cv`` call
:func:`build_report`."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from rich.console import Console

from mtl.errors import UserError
from mtl.experiments.report import render, subgroups
from mtl.experiments.report.runs import find_runs
from mtl.experiments.report.table import all_columns, experiments


def build_report(
    runs: Sequence[str],
    out: Path,
    stage: Literal["test", "val"] = "test",
    metrics: Sequence[str] = ("acc",),
    references: bool = False,
    reference_file: Path | None = None,
    into: Path | None = None,
    baseline_ignoring: Sequence[str] = (),
) -> str:
    """Build the report of ``runs`` into ``out``; returns its Markdown. With ``into``, the same
    tables and the plots (linked relative to it) replace the marked block of that file.
    ``baseline_ignoring``: config keys a multi-task row's single-task row may differ in where
    none matches on every key (:func:`~mtl.experiments.report.comparison.baseline`)."""
    if into is not None:  # before any work: a wrong document is the user's to fix first
        if not into.is_file():
            raise UserError(f"--into: no such file {into}")
        render.check_block(into.read_text(), str(into))
    console = Console(width=None if sys.stdout.isatty() else 200)
    notes: list[str] = []
    found_runs = find_runs(runs, notes)
    found = experiments(found_runs, stage, metrics, notes, baseline_ignoring)
    for line in notes:
        console.print(f"[yellow]{line}")
    if not found:
        raise UserError(f"no finished runs with {stage} results under {' '.join(runs)}")
    columns = all_columns(found)
    shown = []
    if references or reference_file:
        shown = render.relevant(render.load_references(reference_file), columns)
    rows = render.table_rows(found, shown, columns)
    out.mkdir(parents=True, exist_ok=True)
    note = (
        f"{len(found_runs)} runs; cells: mean ± sample std (number of runs) of {stage} "
        f"{'/'.join(metrics)} (accuracy and F1 in %), over folds and seeds; Δ: multi-task minus "
        "the matching single-task row, over the runs paired by fold and data seed (each side's "
        "runs of a fold averaged over seed_everything), with Student's t 95 % confidence "
        "interval and the number of pairs ('spans 0': no evidence of a difference; 'unpaired': "
        "no common fold and data seed, difference of the rows' means); Δm: LibMTL's mean "
        "relative multi-task gain (per task, then over the tasks that have a "
        "single-task row)."
    )
    loose = render.loose_pairs(found)
    if loose:
        note += (
            f"\n\n{render.LOOSE} Δ taken against a single-task row that differs in config keys "
            "(--baseline_ignoring):\n\n"
        )
        note += "\n".join(f"- {line}" for line in loose)
    if notes:
        note += "\n\n" + "\n".join(f"- {line}" for line in notes)
    if shown:
        note += "\n\nPapers' figures (their data and protocol differ; see each source):\n\n"
        note += "\n".join(f"- {r.label}: {r.source}" for r in shown)
    text = render.markdown(rows, columns, note)
    render.write_csv(out / "report.csv", found)
    render.bar_chart(out / "bars.png", found, shown, columns)
    render.curves_chart(out / "curves.png", found)
    plots = ["bars.png", "curves.png"]
    if render.deltas_chart(out / "deltas.png", found):
        plots.append("deltas.png")
    if subgroups.chart(out / "subgroups.png", found):
        plots.append("subgroups.png")
    how = render.how_markdown(found)
    per_subgroup = subgroups.markdown(found)  # "" when no run measured subgroups
    (out / "report.md").write_text(
        f"{text}\n## How each row ran\n\n{how}" + (per_subgroup and f"\n{per_subgroup}")
    )
    console.print(render.rich_table(rows, columns, f"{stage} results ({len(found_runs)} runs)"))
    console.print(f"written: {out}/report.md, report.csv, {', '.join(plots)}")
    if into is not None:
        images = "\n\n".join(
            f"![{name.removesuffix('.png')}]({os.path.relpath(out / name, into.parent)})"
            for name in plots
        )
        sub = per_subgroup.replace("## Accuracy", "### Accuracy")
        sub = sub and f"{sub}\n"
        block = f"{text}\n### How each row ran\n\n{how}\n{sub}{images}\n"
        into.write_text(render.splice(into.read_text(), block, str(into)))
        console.print(f"written: the report block of {into}")
    return text

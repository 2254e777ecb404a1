"""The comparison as a console table, Markdown, CSV and PNG plots; the papers' figures beside.

Rows are experiments (and, with references, the papers' rows), columns task · source; each
multi-task row is followed by its difference to single-task, paired by fold and data seed with a
95 % confidence interval, and carries Δm (:mod:`mtl.experiments.report.comparison`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from rich.table import Table

from mtl.errors import UserError
from mtl.experiments.report.cells import delta_cell, format_cell
from mtl.experiments.report.comparison import (
    baseline,
    delta_m,
    deltas,
    loose_keys,
    paired_deltas,
    values_of,
)
from mtl.experiments.report.figures import colour, legend_label, pyplot, save
from mtl.experiments.report.table import Column, Experiment, Stats
from mtl.tasks import metric_of

DELTA_ROW = "  Δ vs single-task [95 % CI] (pairs)"
LOOSE = "‡"
"""Marks a Δ taken against a single-task row that differs in ``--baseline_ignoring`` keys."""


@dataclass
class Reference:
    """A published row: its label, where it is from, and its cells (fractions)."""

    label: str
    source: str
    stats: dict[Column, Stats]


def load_references(path: Path | None = None) -> list[Reference]:
    """The papers' figures (``references.yaml`` shipped with mtl, or ``path``)."""
    if path is not None and not path.is_file():
        raise UserError(f"no reference file {path}")
    text = (
        path.read_text()
        if path is not None
        else resources.files("mtl.experiments.report").joinpath("references.yaml").read_text()
    )
    out = []
    try:
        for entry in yaml.safe_load(text):
            stats = {}
            for key, (mean, std) in entry["cells"].items():
                task, source = key.split("/")
                stats[Column(task, source, "acc")] = Stats(mean / 100, (std or 0.0) / 100, 0)
            out.append(Reference(entry["label"], entry["source"], stats))
    except (yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        where = path or "references.yaml"
        raise UserError(
            f"{where}: a list of {{label, source, cells: {{task/source: [mean %, std %]}}}} "
            f"entries expected ({type(err).__name__}: {err})"
        ) from None
    return out


def relevant(references: list[Reference], columns: list[Column]) -> list[Reference]:
    """The references that share a column with the measured runs."""
    return [r for r in references if set(r.stats) & set(columns)]


def table_rows(
    found: list[Experiment], references: list[Reference], columns: list[Column]
) -> list[tuple[str, list[str], str]]:
    """(label, cells, Δm) per row: experiments with their Δ rows, then references."""
    rows = []
    for e in found:
        stats = e.stats()
        cells = [format_cell(stats.get(c), c.metric) for c in columns]
        dm = delta_m(e, found)
        rows.append((e.label, cells, "" if dm is None else f"{dm:+.2f} %"))
        diff, paired = deltas(e, found), paired_deltas(e, found)
        if diff:
            shown = [delta_cell(diff.get(c), paired.get(c), c.metric)
                     + (f" {LOOSE}" if c in diff and loose_keys(e, c.task, found) else "")
                     for c in columns]  # fmt: skip
            rows.append((DELTA_ROW, shown, ""))
    for r in references:
        cells = []
        for c in columns:
            s = r.stats.get(c)
            std = f" ± {100 * s.std:.2f}" if s is not None and s.std else ""
            cells.append("–" if s is None else f"{100 * s.mean:.2f}{std}")
        rows.append((f"paper: {r.label}", cells, ""))
    return rows


def loose_pairs(found: list[Experiment]) -> list[str]:
    """One line per multi-task row and task whose single-task row was matched ignoring config
    keys (``--baseline_ignoring``): which row, and the keys in which the two differ, so a
    reader sees what the difference compares."""
    lines = []
    for e in found:
        for task in e.tasks if not e.single_task else ():
            keys = loose_keys(e, task, found)
            if keys:
                base = baseline(e, task, found)
                assert base is not None  # loose keys come from a baseline
                values = {k: values_of(k, e, base) for k in keys}
                differ = "; ".join(f"{k}: multi-task {mine}, single-task {theirs}"
                                   for k, (mine, theirs) in values.items())  # fmt: skip
                lines.append(f"{e.label}: {task} Δ taken against {base.label} ({differ})")
    return lines


def how_rows(found: list[Experiment]) -> list[list[str]]:
    """Per experiment: runs, precision, training data path, epochs, fit wall time per run and
    hardware, each value as it was (several values joined), so a reader sees what every row
    cost and where."""

    def joined(values: list) -> str:
        kept = {v for v in values if v not in (None, "")}
        return ", ".join(str(v) for v in sorted(kept, key=lambda v: (str(type(v)), v))) or "–"

    rows = []
    for e in found:
        if e.fields.get("model") != "final":  # an ensemble: the same runs as its final model
            continue
        how = e.how
        seconds = [h["fit_seconds"] for h in how if isinstance(h.get("fit_seconds"), int | float)]
        wall = "–"
        if seconds:
            mean = sum(seconds) / len(seconds)
            wall = f"{mean / 60:.1f} min" + (f" (× {len(seconds)})" if len(seconds) > 1 else "")
        devices = joined([h.get("devices") for h in how])
        hardware = joined([h.get("hardware") for h in how])
        threads = joined([h.get("threads") for h in how])
        where = hardware if devices in ("1", "–") else f"{devices} × {hardware}"
        if threads != "–" and all(h.get("device", "cpu") == "cpu" for h in how):
            where += f", {threads} threads"
        rows.append([e.label, str(len(how)), joined([h.get("precision") for h in how]),
                     joined([h.get("data_path") for h in how]),
                     joined([h.get("epochs") for h in how]), wall, where])  # fmt: skip
    return rows


HOW_HEADER = [
    "experiment", "runs", "precision", "training data", "epochs", "fit wall time per run",
    "hardware",
]  # fmt: skip


def how_markdown(found: list[Experiment]) -> str:
    """:func:`how_rows` as a Markdown table."""
    lines = ["| " + " | ".join(HOW_HEADER) + " |", "|" + "---|" * len(HOW_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in how_rows(found)]
    return "\n".join(lines) + "\n"


def rich_table(rows: list[tuple[str, list[str], str]], columns: list[Column], title: str) -> Table:
    table = Table(title=title)
    table.add_column("experiment")
    for c in columns:
        table.add_column(c.label, justify="right")
    table.add_column("Δm", justify="right")
    for label, cells, dm in rows:
        table.add_row(label, *cells, dm)
    return table


def markdown(rows: list[tuple[str, list[str], str]], columns: list[Column], note: str) -> str:
    header = ["experiment", *(c.label for c in columns), "Δm"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([label, *cells, dm]) + " |" for label, cells, dm in rows]
    return "\n".join(lines) + f"\n\n{note}\n"


def write_csv(path: Path, found: list[Experiment]) -> None:
    """One row per experiment and column: mean, std, n, and the difference to single-task
    (``single_task_row``: the row it is taken against)."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["experiment", "key", "task", "source", "metric", "mean", "std", "n",
                         "delta_vs_single", "delta_m_percent", "paired_delta",
                         "paired_ci_low", "paired_ci_high", "pairs",
                         "single_task_row"])  # fmt: skip
        for e in found:
            diff, dm, paired = deltas(e, found), delta_m(e, found), paired_deltas(e, found)
            key = "|".join(e.fields.values())
            for c, s in e.stats().items():
                row = [e.label, key, c.task, c.source, c.metric, s.mean, s.std, s.n]
                row += [diff.get(c, ""), "" if dm is None else dm]
                p = paired.get(c)
                row += ["", "", "", 0] if p is None else [p.mean, p.low, p.high, p.n]
                base = baseline(e, c.task, found) if c in diff else None
                writer.writerow([*row, "" if base is None else base.label])


def bar_chart(
    path: Path, found: list[Experiment], references: list[Reference], columns: list[Column]
) -> None:
    """Grouped bars: a group per column, a bar per experiment (mean, error bar: std); the
    papers' rows hatched; the legend beside the plot."""
    plt = pyplot()
    series = [(e.label, e.stats()) for e in found]
    series += [(f"paper: {r.label}", r.stats) for r in references]
    width = 0.8 / max(len(series), 1)
    scale = [metric_of(c.metric).scale for c in columns]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(columns) + 2) + 5, 4.5))
    for i, (label, stats) in enumerate(series):
        xs = [k + (i - (len(series) - 1) / 2) * width for k in range(len(columns))]
        cells = [(stats[c].mean * f, stats[c].std * f) if c in stats else (float("nan"), 0.0)
                 for c, f in zip(columns, scale, strict=True)]  # fmt: skip
        hatch = "//" if label.startswith("paper") else None
        ax.bar(xs, [m for m, _ in cells], width, yerr=[s for _, s in cells], capsize=2,
               label=legend_label(label), hatch=hatch, color=colour(i, len(series)))  # fmt: skip
    ax.set_xticks(range(len(columns)), [c.label for c in columns], rotation=15, ha="right")
    ax.set_ylabel("accuracy (%)" if all(metric_of(c.metric).percent for c in columns) else "value")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    save(fig, path)


def deltas_chart(path: Path, found: list[Experiment]) -> bool:
    """Each multi-task experiment's paired difference to single-task per column, with its 95 %
    interval as an error bar and a line at 0: a bar whose interval crosses the line (hollow)
    shows no difference. False (nothing written) when no experiment has one."""
    series = [(e.label, paired_deltas(e, found)) for e in found]
    series = [(label, p) for label, p in series if p]
    if not series:
        return False
    plt = pyplot()
    columns = sorted({c for _, p in series for c in p})
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(columns) + 2) + 5, 4.0))
    for i, (label, paired) in enumerate(series):
        for k, c in enumerate(columns):
            p = paired.get(c)
            if p is None:
                continue
            scale = metric_of(c.metric).scale
            x = k + (i - (len(series) - 1) / 2) * width
            err = None
            if p.has_interval:  # asymmetric bar: below and above the mean
                err = [[scale * (p.mean - p.low)], [scale * (p.high - p.mean)]]
            rgb, shown = colour(i, len(series)), legend_label(label) if k == 0 else None
            ax.bar(x, scale * p.mean, width, yerr=err, capsize=3, color=rgb, edgecolor=rgb,
                   fill=not p.spans_zero, label=shown)  # fmt: skip
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(columns)), [c.label for c in columns], rotation=15, ha="right")
    ax.set_ylabel("multi-task − single-task (acc/F1: points; MAE: its unit)")
    ax.set_title("paired difference, 95 % CI (hollow: interval contains 0)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="y", alpha=0.3)
    save(fig, path)
    return True


def curves_chart(path: Path, found: list[Experiment], metric: str = "acc") -> None:
    """Validation ``val/<task>/<metric>`` by epoch: a panel per task, a line per experiment
    (mean over its runs, band: min to max)."""
    plt = pyplot()
    keys = {k for e in found for k in e.curves if k.count("/") == 2 and k.endswith(f"/{metric}")}
    tasks = sorted(k.split("/")[1] for k in keys)
    if not tasks:
        return
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for k, e in enumerate(found):  # one colour per experiment in every panel
            runs = e.curves.get(f"val/{task}/{metric}", [])
            by_epoch: dict[float, list[float]] = {}
            for curve in runs:
                for epoch, value in curve:
                    by_epoch.setdefault(epoch, []).append(value)
            if not by_epoch:
                continue
            epochs = sorted(by_epoch)
            mean = [sum(by_epoch[x]) / len(by_epoch[x]) for x in epochs]
            rgb = colour(k, len(found))
            ax.plot(epochs, mean, label=legend_label(e.label), color=rgb)
            lo, hi = [min(by_epoch[x]) for x in epochs], [max(by_epoch[x]) for x in epochs]
            ax.fill_between(epochs, lo, hi, alpha=0.15, color=rgb)
        ax.set_title(f"val/{task}/{metric}")
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    labels: dict[str, object] = {}  # one legend for every panel: the experiments in any of them
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            labels.setdefault(label, handle)
    fig.tight_layout()  # the panels among themselves; the legend below them, outside
    fig.legend(labels.values(), labels.keys(), loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=min(len(labels), 2), fontsize=8)  # fmt: skip
    save(fig, path)


BEGIN = "<!-- mtl report: from here to the end marker, written by the command above -->"
END = "<!-- mtl report: end -->"


def check_block(document: str, name: str = "the document") -> None:
    """Refuse a document without exactly one :data:`BEGIN` line followed by an :data:`END`."""
    begin = document.find(BEGIN)
    if begin < 0 or document.find(END, begin) < 0 or document.count(BEGIN) > 1:
        raise UserError(f"{name} needs one '{BEGIN}' line, then '{END}', to write the report into")


def splice(document: str, block: str, name: str = "the document") -> str:
    """``document`` with the text between its :data:`BEGIN` and :data:`END` lines replaced by
    ``block`` (the prose around it is the author's, the block the report's)."""
    check_block(document, name)
    begin = document.find(BEGIN)
    end = document.find(END, begin)
    return document[: begin + len(BEGIN)] + "\n\n" + block.strip() + "\n\n" + document[end:]

"""The report's accuracy per subgroup: for each experiment, every subgroup's test accuracy
(mean ± std over its runs, with the faces counted over them) and the gap between its best and
worst subgroup, as Markdown tables and a plot. Read from each local run's ``run.json``
(``subgroups``, written by :mod:`mtl.training.subgroups`); a subgroup judged in no run (too few
faces) is listed with its count and no accuracy."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

from mtl.experiments.report.figures import colour, legend_label, pyplot, save
from mtl.experiments.report.table import Experiment

Key = tuple[str, str, str]  # source, task, partition


def summarise(experiment: Experiment) -> dict[Key, dict[str, tuple[int, list[float]]]]:
    """(source, task, partition) -> subgroup -> (faces over the runs, accuracies of the runs
    that judged it)."""
    out: dict[Key, dict[str, tuple[int, list[float]]]] = {}
    for groups in experiment.subgroups:
        for g in groups:
            cell = out.setdefault((g["source"], g["task"], g["partition"]), {})
            faces, values = cell.get(g["group"], (0, []))
            values = values + ([g["value"]] if g["value"] is not None else [])
            cell[g["group"]] = (faces + int(g["count"]), values)
    return out


def _mean_std(values: Sequence[float]) -> str:
    if not values:
        return "too few faces"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.2f} ± {100 * std:.2f} ({len(values)})"


def markdown(found: Sequence[Experiment]) -> str:
    """The gaps table, then every subgroup; empty when no run measured subgroups."""
    with_groups = [e for e in found if e.subgroups]
    if not with_groups:
        return ""
    gaps = ["| experiment | dataset | task | subgroups of | best | worst | gap (points) |",
            "|---|---|---|---|---|---|---:|"]  # fmt: skip
    rows = ["| experiment | dataset | task | subgroups of | subgroup | faces | accuracy (%) |",
            "|---|---|---|---|---|---:|---:|"]  # fmt: skip
    for e in with_groups:
        for (source, task, partition), cells in summarise(e).items():
            judged = {g: statistics.fmean(v) for g, (_, v) in cells.items() if v}
            best = max(judged, key=judged.__getitem__) if len(judged) > 1 else None
            worst = min(judged, key=judged.__getitem__) if len(judged) > 1 else None
            gap = f"{100 * (judged[best] - judged[worst]):.2f}" if best and worst else "-"
            gaps.append(f"| {e.label} | {source} | {task} | {partition} | {best or '-'} | "
                        f"{worst or '-'} | {gap} |")  # fmt: skip
            for group, (faces, values) in sorted(cells.items()):
                rows.append(f"| {e.label} | {source} | {task} | {partition} | {group} | {faces} | "
                            f"{_mean_std(values)} |")  # fmt: skip
    note = ("Test accuracy per subgroup of the faces a dataset describes (mean ± std over the "
            "runs that had enough faces in it, their number in brackets; faces: over all runs). "
            "Gap: best minus worst subgroup mean.")  # fmt: skip
    return "\n".join(["## Accuracy per subgroup", "", note, "", *gaps, "", *rows, ""])


def chart(path: Path, found: Sequence[Experiment]) -> bool:
    """A panel per dataset, task and partition, a bar per judged subgroup and experiment.
    False (nothing written) when no run measured subgroups."""
    with_groups = [e for e in found if e.subgroups]
    if not with_groups:
        return False
    plt = pyplot()
    summaries = [(e.label, summarise(e)) for e in with_groups]
    keys = sorted({k for _, s in summaries for k in s})
    fig, axes = plt.subplots(len(keys), 1, figsize=(10, 2.8 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys, strict=True):
        groups = sorted({g for _, s in summaries for g, (_, v) in s.get(key, {}).items() if v})
        width = 0.8 / len(summaries)
        for i, (label, summary) in enumerate(summaries):
            cells = summary.get(key, {})
            means = [100 * statistics.fmean(cells[g][1]) if g in cells and cells[g][1]
                     else float("nan") for g in groups]  # fmt: skip
            xs = [k + (i - (len(summaries) - 1) / 2) * width for k in range(len(groups))]
            ax.bar(xs, means, width, label=legend_label(label), color=colour(i, len(summaries)))
        ax.set_xticks(range(len(groups)), groups, rotation=20, ha="right", fontsize=7)
        ax.set_title(f"{key[0]}: {key[1]} accuracy by {key[2]}", fontsize=9)
        ax.set_ylabel("accuracy (%)")
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()  # the panels among themselves; the legend beside them, outside
    save(fig, path)
    return True

"""Runs → the papers' table: rows = experiments, columns = task × source, cells = mean ± std.

An *experiment* is what a run's identity says apart from its repetition: task set, backbone,
weighting and loss, and which model was evaluated (the final one, or the checkpoint ensemble
``test_ens``). Its folds and seeds are its runs; a cell is the mean ± sample standard deviation
over them, with their number.

Against single-task, a multi-task experiment gets per column the difference to the single-task
experiment of that column's task (same backbone, loss and model), and the mean relative gain
as LibMTL defines it (Maninis et al. 2019; Vandenhende et al. 2021)::

    Δm = 100 % · 1/K · Σ_k (-1)^{l_k} (M_mt,k − M_st,k) / M_st,k

over the K columns both have, with l_k = 1 where lower is better (MAE) and 0 otherwise.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mtl.report.runs import Run
from mtl.run_report import MODELS, parse_key

LOWER_IS_BETTER = {"mae"}
PERCENT = {"acc", "f1"}
EXPERIMENT_FIELDS = ("task_set", "backbone", "weighting", "loss", "model")


@dataclass(frozen=True, order=True)
class Column:
    """One table column: a task measured on one source (``all``: every source together)."""

    task: str
    source: str
    metric: str

    @property
    def label(self) -> str:
        return f"{self.task} · {self.source}" + ("" if self.metric == "acc" else f" {self.metric}")


@dataclass(frozen=True)
class Stats:
    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return cls(statistics.fmean(values), std, len(values))


@dataclass
class Experiment:
    """The runs of one experiment and what they measured."""

    fields: dict[str, str]
    values: dict[Column, list[float]] = field(default_factory=dict)
    curves: dict[str, list[list[tuple[float, float]]]] = field(default_factory=dict)
    label: str = ""

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.fields["task_set"].split("+"))

    @property
    def single_task(self) -> bool:
        return len(self.tasks) == 1

    def stats(self) -> dict[Column, Stats]:
        return {c: Stats.of(v) for c, v in sorted(self.values.items())}


def run_columns(run: Run, prefix: str, metrics: Iterable[str]) -> dict[Column, float]:
    """The run's values under ``prefix`` (``test``, ``test_ens``, ``val``) by column; a task's
    all-sources value only where the run has no per-source value of it (older runs)."""
    wanted = set(metrics)
    columns: dict[Column, float] = {}
    for key, value in run.metrics.items():
        parsed = parse_key(key)
        if parsed and parsed[0] == prefix and parsed[3] in wanted:
            _, source, task, metric = parsed
            columns[Column(task, source or "all", metric)] = value
    per_source = {(c.task, c.metric) for c in columns if c.source != "all"}
    return {
        c: v
        for c, v in columns.items()
        if c.source != "all" or (c.task, c.metric) not in per_source
    }


def experiments(
    runs: Iterable[Run], stage: str = "test", metrics: Sequence[str] = ("acc",)
) -> list[Experiment]:
    """The runs grouped into experiments, each with its values per column, named by what
    differs between the experiments."""
    prefixes = {p: m for p, m in MODELS.items()} if stage == "test" else {"val": "final"}
    found: dict[tuple, Experiment] = {}
    for run in runs:
        identity = run.identity
        for prefix, model in prefixes.items():
            columns = run_columns(run, prefix, metrics)
            if not columns:
                continue
            fields = {f: str(identity.get(f, "")) for f in EXPERIMENT_FIELDS[:-1]}
            fields["task_set"] = fields["task_set"] or "+".join(run.tasks)
            fields["model"] = model
            experiment = found.setdefault(tuple(fields.values()), Experiment(fields))
            for column, value in columns.items():
                experiment.values.setdefault(column, []).append(value)
            if model == "final":
                for key, curve in run.curves.items():
                    experiment.curves.setdefault(key, []).append(curve)

    def order(e: Experiment) -> tuple:  # single-task first; the final model before its ensemble
        rest = [v for f, v in e.fields.items() if f != "model"]
        return not e.single_task, rest, e.fields["model"] != "final"

    ordered = sorted(found.values(), key=order)
    name_experiments(ordered)
    return ordered


def name_experiments(found: Sequence[Experiment]) -> None:
    """Label each experiment by the fields that differ between them (the task set always)."""
    varying = [f for f in EXPERIMENT_FIELDS if len({e.fields[f] for e in found}) > 1]
    for e in found:
        kind = "single-task" if e.single_task else "multi-task"
        parts = [f"{kind} {e.fields['task_set']}"]
        parts += [e.fields[f] for f in varying if f not in ("task_set", "model")]
        if e.fields["model"] == "ensemble":
            parts.append("+ ensemble")
        e.label = " · ".join(parts)


def baseline(experiment: Experiment, task: str, found: Sequence[Experiment]) -> Experiment | None:
    """The single-task experiment of ``task`` matching ``experiment`` (backbone, loss, model)."""
    same = ("backbone", "loss", "model")
    for other in found:
        if other.tasks == (task,) and all(other.fields[f] == experiment.fields[f] for f in same):
            return other
    return None


def deltas(experiment: Experiment, found: Sequence[Experiment]) -> dict[Column, float]:
    """Multi-task minus single-task mean per column (in the metric's units)."""
    if experiment.single_task:
        return {}
    out = {}
    mine = experiment.stats()
    for column, stats in mine.items():
        base = baseline(experiment, column.task, found)
        if base is not None and column in base.values:
            out[column] = stats.mean - Stats.of(base.values[column]).mean
    return out


def delta_m(experiment: Experiment, found: Sequence[Experiment]) -> float | None:
    """LibMTL's mean relative multi-task gain Δm in per cent, or None without baselines."""
    gains = []
    mine = experiment.stats()
    for column, diff in deltas(experiment, found).items():
        base = mine[column].mean - diff
        if base:
            sign = -1.0 if column.metric in LOWER_IS_BETTER else 1.0
            gains.append(sign * diff / base)
    return 100.0 * statistics.fmean(gains) if gains else None


def format_cell(stats: Stats | None, metric: str) -> str:
    if stats is None:
        return "–"
    scale, digits = (100.0, 2) if metric in PERCENT else (1.0, 3)
    return f"{stats.mean * scale:.{digits}f} ± {stats.std * scale:.{digits}f} ({stats.n})"


def format_delta(diff: float | None, metric: str) -> str:
    if diff is None:
        return ""
    scale, digits = (100.0, 2) if metric in PERCENT else (1.0, 3)
    return f"{diff * scale:+.{digits}f}"


def all_columns(found: Sequence[Experiment]) -> list[Column]:
    return sorted({c for e in found for c in e.values})

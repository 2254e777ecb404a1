"""Runs → the papers' table: rows = experiments, columns = task × source, cells = mean ± std.

An *experiment* is what a run's identity says apart from its repetition: task set, backbone,
weighting and loss, the config keys that differ between runs of that identity (epochs, learning
rate, batch norm …; not seeds, folds, paths or logging), and which model was evaluated (the
final one, or the checkpoint ensemble ``test_ens``). Its folds and seeds (the data seed and
``seed_everything``: :func:`repetition`) are its runs (a repeated fold and seed counts once); a
cell is the mean ± sample standard deviation over them, with their number.

How a multi-task row compares with single-task (its baseline, the paired differences and Δm)
is :mod:`mtl.experiments.report.comparison`'s job.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mtl.experiments.report.runs import Run
from mtl.tasks import parse_metric_key
from mtl.training.run_file import MODELS
from mtl.training.settings import ANY, settings_items

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


Repetition = tuple[object, object, object]
"""(fold, data seed, ``seed_everything``): which repetition of its experiment a run is; the
first two are its data split (:func:`~mtl.experiments.report.comparison.per_split`)."""


@dataclass
class Experiment:
    """The runs of one experiment and what they measured."""

    fields: dict[str, str]
    variant: dict[str, str] = field(default_factory=dict)  # config keys that set it apart
    values: dict[Column, list[float]] = field(default_factory=dict)
    by_run: dict[Column, dict[Repetition, float]] = field(default_factory=dict)
    curves: dict[str, list[list[tuple[float, float]]]] = field(default_factory=dict)
    how: list[dict] = field(default_factory=list)  # per run: epochs, fit_seconds, ran
    config: dict[str, str] = field(default_factory=dict)  # its first run's config items
    subgroups: list[list[dict]] = field(default_factory=list)  # per run: accuracy per subgroup
    label: str = ""
    baseline_ignoring: tuple[str, ...] = ()  # keys its single-task row may differ in

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
        parsed = parse_metric_key(key)
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
    runs: Iterable[Run],
    stage: str = "test",
    metrics: Sequence[str] = ("acc",),
    notes: list[str] | None = None,
    baseline_ignoring: Sequence[str] = (),
) -> list[Experiment]:
    """The runs grouped into experiments, each with its values per column, named by what
    differs between the experiments. Runs of one identity (task set, backbone, weighting, loss)
    whose configs differ (epochs, learning rate, batch norm …) are separate experiments named
    by those keys; a second run of the same experiment, fold and seeds is left out (a note),
    silently where its values are the kept run's (the same checkpoint re-tested, say with
    another ensemble size: its final model is the same result, counted once).
    ``baseline_ignoring``: config keys a multi-task row's single-task baseline may differ in
    where none matches on every key (:func:`~mtl.experiments.report.comparison.baseline`)."""
    notes = [] if notes is None else notes
    prefixes = dict(MODELS) if stage == "test" else {"val": "final"}
    runs = sorted(runs, key=lambda r: r.origin)
    bases = {id(run): base_fields(run) for run in runs}
    variants = config_variants(runs, bases)
    found: dict[tuple, Experiment] = {}
    seen: dict[tuple, tuple[str, dict]] = {}
    for run in runs:
        run_key = repetition(run)
        for prefix, model in prefixes.items():
            columns = run_columns(run, prefix, metrics)
            if not columns:
                continue
            fields = bases[id(run)] | {"model": evaluated_model(run, model)}
            key = (*fields.values(), *variants[id(run)].items())
            which = (key, *run_key)
            if which in seen:
                kept, kept_columns = seen[which]
                if columns != kept_columns:  # equal: the same model tested again, one result
                    notes.append(f"left out {run.origin}: same experiment, fold and seeds as "
                                 f"{kept}")  # fmt: skip
                continue
            seen[which] = run.origin, columns
            experiment = found.setdefault(
                key,
                Experiment(fields, variant=variants[id(run)], config=settings_items(run.config),
                           baseline_ignoring=tuple(baseline_ignoring)),
            )  # fmt: skip
            experiment.how.append(run_how(run))
            for column, value in columns.items():
                experiment.values.setdefault(column, []).append(value)
                experiment.by_run.setdefault(column, {})[run_key] = value
            if model == "final":
                for name, curve in run.curves.items():
                    experiment.curves.setdefault(name, []).append(curve)
                if run.subgroups.get("groups"):
                    experiment.subgroups.append(run.subgroups["groups"])

    def order(e: Experiment) -> tuple:  # single-task first; the final model, then ensembles
        rest = [v for f, v in e.fields.items() if f != "model"]
        model = e.fields["model"]  # "final", "ensemble", "ensemble of K": by K
        members = int(model.rsplit(" ", 1)[-1]) if model[-1].isdigit() else 0
        return not e.single_task, rest, sorted(e.variant.items()), model != "final", members

    ordered = sorted(found.values(), key=order)
    name_experiments(ordered)
    return ordered


def evaluated_model(run: Run, model: str) -> str:
    """``final``, or the ensemble with its number of members (``ensemble of 5``): ensembles of
    different sizes are different models, so they never share a row or a pair. The size is what
    the test averaged (``ensemble_members``, in ``run.json`` and a W&B run's config); for runs,
    local or W&B, written before it was recorded, the run's ``ensemble`` setting, capped by the
    epochs its fit trained where the run says; a run with neither (saved without
    ``config.yaml``) is ``ensemble``, a row of its own."""
    if model != "ensemble":
        return model
    size = count(run.how.get("ensemble_members"))
    if size is None and (asked := count(run.config.get("ensemble"))) is not None:
        size = min(asked, count(run.how.get("epochs")) or asked)
    return model if size is None else f"{model} of {size}"


def count(value: object) -> int | None:
    """``value`` if it is a positive whole number (not a bool, which is an int), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def repetition(run: Run) -> Repetition:
    """Which repetition of its experiment a run is: its fold, its data seed (``data.seed``:
    folds, data order, augmentation) and its ``seed_everything`` (initial weights, dropout), so
    that repeating a fold under either seed adds a run. A run saved without a config has no
    ``seed_everything`` (None); an unseeded run (``seed_everything: false``) is a repetition of
    its own, not seed 0's (``False == 0`` in Python)."""
    seed = run.config.get("seed_everything")
    if isinstance(seed, bool):
        seed = f"unseeded: {run.origin}"
    return run.identity.get("fold"), run.identity.get("seed"), seed


def run_how(run: Run) -> dict:
    """How a run ran (``run.json``), its precision and data path read from its config where
    older runs did not record them (a data path only where the config set one)."""
    ran = dict(run.how.get("ran", {}))
    if "precision" not in ran:
        trainer = run.config.get("trainer") or {}
        ran["precision"] = str(trainer.get("precision") or "32-true")
    if ran.get("data_path") is None:
        data = run.config.get("data") or {}
        given = (data.get("init_args") or {}).get("device_data")
        if isinstance(given, bool):
            ran["data_path"] = "in memory" if given else "DataLoader"  # DataPath.name's words
    return {k: v for k, v in run.how.items() if k != "ran"} | ran


def base_fields(run: Run) -> dict[str, str]:
    """A run's identity fields that make its experiment (not its fold or seed)."""
    fields = {f: str(run.identity.get(f, "")) for f in EXPERIMENT_FIELDS[:-1]}
    fields["task_set"] = fields["task_set"] or "+".join(run.tasks)
    return fields


ABSENT = "-"
"""The value of a config key a run's config lacks because it names another class (a scheduler's
``T_max`` in a run with another scheduler): shown with that class, not on its own."""


def _parent(key: str) -> str:
    return key.rsplit(".", 1)[0]


def value_of(items: dict[str, str], key: str, varying: Iterable[str]) -> str:
    """A run's value of a config key (``items``: its
    :func:`~mtl.training.settings.settings_items`). A key it lacks is ``None`` (an option added
    after the run was made, if its default is ``None``: one added with another default still
    tells old runs from new ones), or :data:`ABSENT` where the key is an argument of a class
    key that differs between the runs (``varying``)."""
    if key in items:
        return items[key]
    return ABSENT if _parent(key) in varying else "None"


def config_variants(runs: Sequence[Run], bases: dict[int, dict]) -> dict[int, dict[str, str]]:
    """For each run, the config keys (and its values, :func:`value_of`) that differ between
    runs of its identity; a key absent from some runs' configs and ``None`` in the others'
    differs in none."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(bases[id(run)].values()), []).append(run)
    variants = {}
    for group in groups.values():
        items = {id(run): settings_items(run.config) for run in group}
        keys = set().union(*items.values())
        varying = sorted(k for k in keys if len({items[id(r)].get(k, "None") for r in group}) > 1)
        for run in group:
            variants[id(run)] = {k: value_of(items[id(run)], k, varying) for k in varying}
    return variants


def variant_label(variant: dict[str, str]) -> list[str]:
    """The label parts of an experiment's config keys: ``key=value`` for each key its config
    has, a class's differing arguments in brackets after it
    (``model.lr_scheduler=CosineAnnealingLR(T_max=30)``)."""
    shown = {k: v for k, v in variant.items() if v not in (ABSENT, ANY)}
    parts = []
    for key, value in shown.items():
        if any(key.startswith(f"{other}.") for other in shown):
            continue  # an argument of a class key, shown with it
        args = [
            f"{k.removeprefix(key + '.')}={v}" for k, v in shown.items() if k.startswith(f"{key}.")
        ]
        parts.append(f"{key}={value}" + (f"({', '.join(args)})" if args else ""))
    return parts


def name_experiments(found: Sequence[Experiment]) -> None:
    """Label each experiment by the fields that differ between them (the task set always) and
    the config keys that split runs of one identity."""
    varying = [f for f in EXPERIMENT_FIELDS if len({e.fields[f] for e in found}) > 1]
    for e in found:
        kind = "single-task" if e.single_task else "multi-task"
        parts = [f"{kind} {e.fields['task_set']}"]
        parts += [e.fields[f] for f in varying if f not in ("task_set", "model")]
        parts += variant_label(e.variant)
        if e.fields["model"] != "final":
            parts.append(f"+ {e.fields['model']}")
        e.label = " · ".join(parts)


def all_columns(found: Sequence[Experiment]) -> list[Column]:
    return sorted({c for e in found for c in e.values})

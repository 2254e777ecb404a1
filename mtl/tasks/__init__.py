"""The task registry: the one place that knows what each face-attribute task is.

A :class:`Task` has a name, a kind (classification or regression), the label column of the face
cache it reads, and its classes (or unit). Data sources, caches, splits, heads, losses,
weightings, metrics and reports all read it; nothing else hard-codes a class count, a class
order or which task is a regression.

Conventions fixed for the whole project:

* emotion follows the FER-2013 csv order (angry, disgust, fear, happy, sad, surprise, neutral);
* gender is 0 = female, 1 = male (sources with another encoding, e.g. UTKFace, convert on read);
* ``age`` is the age group: half-open year intervals ``[edge_i, edge_{i+1})`` from explicit,
  configurable edges (default: Rohani et al.'s six groups 0-15, 16-25, 26-35, 36-45, 46-60, 61+);
* ``age_years`` is age in years as a regression (Jassim et al.); it reads the same column as
  ``age`` and is opt-in (``--data.tasks=[..., age_years]``), not part of the default task set.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mtl.tasks.kinds import (
    CLASSIFICATION,
    KINDS,
    METRICS,
    REGRESSION,
    Classification,
    Metric,
    Reading,
    Regression,
    TaskKind,
    kind_named,
    metric_key,
    metric_of,
    metric_prefix,
    parse_metric_key,
)

__all__ = [
    "CLASSIFICATION",
    "Classification",
    "DEFAULT_AGE_EDGES",
    "DEFAULT_TASK_NAMES",
    "EMOTIONS",
    "GENDERS",
    "KINDS",
    "LABEL_COLUMNS",
    "LabelColumn",
    "METRICS",
    "MISSING",
    "Metric",
    "REGRESSION",
    "Reading",
    "RACES",
    "Regression",
    "SMILE",
    "TASK_NAMES",
    "Task",
    "TaskKind",
    "age_group_names",
    "build_tasks",
    "check_age_edges",
    "kind_named",
    "make_task",
    "metric_key",
    "metric_of",
    "metric_prefix",
    "parse_metric_key",
    "task_kind",
]

MISSING = float("nan")
"""Target of a sample that has no label for a task (its mask entry is False)."""


@dataclass(frozen=True)
class LabelColumn:
    """A label column of every face cache (``labels.csv``); tasks read their targets from one.

    ``class`` columns hold a class index (-1 when unknown), ``value`` columns a number (NaN when
    unknown). Splits are stratified by every ``stratify`` column; a value column in bins of
    ``strata_width`` (values at or above ``strata_max`` share one bin). A column no task reads
    (``race``) only describes faces, for metrics per subgroup; it does not stratify, so adding
    it left every split as it was.
    """

    name: str
    dtype: Literal["class", "value"]
    strata_width: float = 1.0
    strata_max: float = float("inf")
    stratify: bool = True
    class_names: tuple[str, ...] = ()


RACES: tuple[str, ...] = ("white", "black", "asian", "indian", "other")
"""UTKFace's race labels 0-4, as its authors name them (a face's perceived group, not a fact
about the person); used only to report metrics per subgroup."""

LABEL_COLUMNS: dict[str, LabelColumn] = {
    c.name: c
    for c in (
        LabelColumn("smile", "class"),
        LabelColumn("emotion", "class"),
        LabelColumn("gender", "class"),
        LabelColumn("age", "value", strata_width=10, strata_max=80),  # years, decades to 80+
        LabelColumn("race", "class", stratify=False, class_names=RACES),  # UTKFace's five
    )
}

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
GENDERS: tuple[str, ...] = ("female", "male")
SMILE: tuple[str, ...] = ("non_smile", "smile")
DEFAULT_AGE_EDGES: tuple[int, ...] = (16, 26, 36, 46, 61)
"""Lower bounds (years) of every age group but the first: 0-15, 16-25, 26-35, 36-45, 46-60, 61+."""


@dataclass(frozen=True)
class Task:
    """One prediction task.

    Args:
        name: the task's name in configs, batches and metric keys.
        kind: :data:`CLASSIFICATION` (class scores, cross-entropy, accuracy) or
            :data:`REGRESSION` (one value, a regression loss, mean absolute error).
        column: the :data:`LABEL_COLUMNS` entry its targets come from.
        class_names: the classes, in target-index order (classification).
        age_edges: for a classification read from a years column: the group edges.
        unit: what a regression value measures (for reports).
        default: part of "every task the data labels" when a run names no tasks.
    """

    name: str
    kind: TaskKind
    column: str
    class_names: tuple[str, ...] = ()
    age_edges: tuple[int, ...] | None = None
    unit: str = ""
    default: bool = True

    @property
    def num_classes(self) -> int:
        """Outputs of the task's head: its classes; a regression predicts one value."""
        return self.kind.num_outputs(self)

    def targets(self, column: np.ndarray) -> np.ndarray:
        """N float targets from the task's label column; :data:`MISSING` where unlabelled."""
        values = np.asarray(column, dtype=np.float64)
        if LABEL_COLUMNS[self.column].dtype == "class":
            return np.where(values < 0, MISSING, values)
        if self.age_edges is not None:  # years -> group index
            groups = np.searchsorted(self.age_edges, np.nan_to_num(values), side="right")
            return np.where(np.isnan(values), MISSING, groups.astype(np.float64))
        return values


def age_group_names(edges: Sequence[int]) -> tuple[str, ...]:
    """Readable names of the half-open groups, e.g. ``(16, 26)`` -> ``0-15, 16-25, 26+``."""
    lows = (0, *edges)
    highs = (*(e - 1 for e in edges), None)
    pairs = zip(lows, highs, strict=True)
    return tuple(f"{lo}-{hi}" if hi is not None else f"{lo}+" for lo, hi in pairs)


def check_age_edges(edges: Sequence[int]) -> tuple[int, ...]:
    """Validate age edges: positive, strictly increasing integers (at least one)."""
    edges = tuple(int(e) for e in edges)
    if not edges:
        raise ValueError("age_edges needs at least one edge (two groups)")
    if edges[0] <= 0 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"age_edges must be positive and strictly increasing, got {edges}")
    return edges


def _registry(age_edges: Sequence[int]) -> dict[str, Task]:
    edges = check_age_edges(age_edges)
    tasks = (
        Task("smile", CLASSIFICATION, "smile", SMILE),
        Task("emotion", CLASSIFICATION, "emotion", EMOTIONS),
        Task("gender", CLASSIFICATION, "gender", GENDERS),
        Task("age", CLASSIFICATION, "age", age_group_names(edges), age_edges=edges),
        Task("age_years", REGRESSION, "age", unit="years", default=False),
    )
    return {t.name: t for t in tasks}


TASK_NAMES: tuple[str, ...] = tuple(_registry(DEFAULT_AGE_EDGES))
"""Every registered task, in the canonical order used for targets/mask columns."""

DEFAULT_TASK_NAMES: tuple[str, ...] = tuple(
    t.name for t in _registry(DEFAULT_AGE_EDGES).values() if t.default
)
"""The tasks a run learns when it names none: smile, emotion, gender, age."""


def _check_names(names: Iterable[str]) -> set[str]:
    wanted = set(names)
    unknown = wanted - set(TASK_NAMES)
    if unknown:
        raise ValueError(
            f"unknown task(s) {sorted(unknown)}; registered tasks: {', '.join(TASK_NAMES)}"
        )
    return wanted


def make_task(name: str, age_edges: Sequence[int] = DEFAULT_AGE_EDGES) -> Task:
    """Build the registered task called ``name``."""
    _check_names([name])
    return _registry(age_edges)[name]


def build_tasks(
    names: Iterable[str], age_edges: Sequence[int] = DEFAULT_AGE_EDGES
) -> tuple[Task, ...]:
    """Tasks for ``names`` in canonical registry order, duplicates removed."""
    wanted = _check_names(names)
    return tuple(t for t in _registry(age_edges).values() if t.name in wanted)


def task_kind(name: str) -> TaskKind:
    """Kind of the registered task ``name`` (its age edges do not matter)."""
    return make_task(name).kind

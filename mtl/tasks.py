"""The task registry: the one place that knows what each face-attribute task is.

Data sources, heads, losses, metrics and reports all read :class:`Task` objects built here;
nothing else hard-codes a class count or a class order.

Conventions fixed for the whole project:

* emotion follows the FER-2013 csv order (angry, disgust, fear, happy, sad, surprise, neutral);
* gender is 0 = female, 1 = male (sources with another encoding, e.g. UTKFace, convert on read);
* age groups are half-open year intervals ``[edge_i, edge_{i+1})`` from explicit, configurable
  edges; the default is the six groups of Rohani et al.: 0-15, 16-25, 26-35, 36-45, 46-60, 61+.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

IGNORE_INDEX = -1
"""Target value of a sample that has no label for a task (its mask entry is False)."""

TASK_NAMES: tuple[str, ...] = ("smile", "emotion", "gender", "age")
"""Every registered task, in the canonical order used for targets/mask columns."""

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
GENDERS: tuple[str, ...] = ("female", "male")
SMILE: tuple[str, ...] = ("non_smile", "smile")
DEFAULT_AGE_EDGES: tuple[int, ...] = (16, 26, 36, 46, 61)
"""Lower bounds (years) of every age group but the first: 0-15, 16-25, 26-35, 36-45, 46-60, 61+."""


@dataclass(frozen=True)
class Task:
    """One prediction task: its name, kind and class names (and, for age, the bin edges)."""

    name: str
    class_names: tuple[str, ...]
    kind: Literal["classification", "regression"] = "classification"
    age_edges: tuple[int, ...] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def age_to_class(self, years: float) -> int:
        """Map an age in years to its group index (half-open bins)."""
        if self.age_edges is None:
            raise ValueError(f"task {self.name!r} has no age bins")
        if not 0 <= years < 150:
            raise ValueError(f"impossible age {years!r} years")
        return bisect.bisect_right(self.age_edges, years)


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


def make_task(name: str, age_edges: Sequence[int] = DEFAULT_AGE_EDGES) -> Task:
    """Build the registered task called ``name``."""
    if name == "smile":
        return Task("smile", SMILE)
    if name == "emotion":
        return Task("emotion", EMOTIONS)
    if name == "gender":
        return Task("gender", GENDERS)
    if name == "age":
        edges = check_age_edges(age_edges)
        return Task("age", age_group_names(edges), age_edges=edges)
    raise ValueError(f"unknown task {name!r}; registered tasks: {', '.join(TASK_NAMES)}")


def build_tasks(
    names: Iterable[str], age_edges: Sequence[int] = DEFAULT_AGE_EDGES
) -> tuple[Task, ...]:
    """Tasks for ``names`` in canonical registry order, duplicates removed."""
    wanted = set(names)
    unknown = wanted - set(TASK_NAMES)
    if unknown:
        raise ValueError(
            f"unknown task(s) {sorted(unknown)}; registered tasks: {', '.join(TASK_NAMES)}"
        )
    return tuple(make_task(n, age_edges) for n in TASK_NAMES if n in wanted)

"""What a reader's scan of a raw dataset yields: items with labels, and the bad records.

A scan never raises on a bad record. Each bad record becomes an :class:`Issue` naming the item
and the reason, so ``mtl prepare`` can count and list them while the rest of the work goes on.
Labels are keyed by the label columns of :data:`mtl.tasks.LABEL_COLUMNS`, in project
conventions: class columns (smile, emotion, gender) as class indices, ``age`` in years (a float,
so age groups can change without re-preparing).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

Box = tuple[float, float, float, float]
"""A face box ``(x1, y1, x2, y2)`` in pixels of the original image."""


@dataclass
class RawItem:
    """One image of a raw dataset with its labels, before face preparation.

    ``id`` is stable and unique within the dataset (a relative path or a csv row number), so a
    bad item can be named and a label can never slide onto another item's image.
    """

    id: str
    labels: dict[str, float]
    path: Path | None = None
    pixels: np.ndarray | None = None  # already-decoded H x W uint8 (FER-2013 csv)
    split: str | None = None  # official split: train | val | test
    fold: int | None = None  # official fold (Adience)
    box: Box | None = None  # face box given by the dataset (IMDB-WIKI face_location)
    group: str | None = None  # the person shown, where the dataset names one (IMDB-WIKI)


@dataclass(frozen=True)
class Issue:
    """A bad record (or a dropped label): the item, a reason category, and the detail."""

    item: str
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.item}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class Scan:
    """The result of reading a raw dataset's labels and file layout."""

    items: list[RawItem] = field(default_factory=list)
    rejected: list[Issue] = field(default_factory=list)  # items skipped entirely
    dropped: list[Issue] = field(default_factory=list)  # one label dropped, item kept
    notes: list[str] = field(default_factory=list)  # dataset-level remarks

    def reject(self, item: str, reason: str, detail: str = "") -> None:
        self.rejected.append(Issue(item, reason, detail))

    def drop(self, item: str, reason: str, detail: str = "") -> None:
        self.dropped.append(Issue(item, reason, detail))

    def keep(self, item: RawItem) -> None:
        """Keep an item if it still has a label; otherwise reject it as unlabelled."""
        if item.labels:
            self.items.append(item)
        else:
            self.reject(item.id, "no usable label")


def count_reasons(issues: list[Issue]) -> dict[str, int]:
    """Issues per reason category, most frequent first."""
    return dict(Counter(i.reason for i in issues).most_common())


class BadLabel(ValueError):
    """A label value that cannot be used; ``reason`` is its category for the summary."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def class_label(value: str | float, num_classes: int) -> int:
    """Parse a class index and check its range, or raise :class:`BadLabel`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadLabel("malformed label", f"{value!r} is not a number") from None
    if not number.is_integer() or not 0 <= number < num_classes:
        raise BadLabel("label out of range", f"{value!r} not in 0..{num_classes - 1}")
    return int(number)


def check_age(years: float) -> float:
    """Return ``years`` if it is a possible human age, else raise :class:`BadLabel`."""
    if not np.isfinite(years) or not 0 <= years < 130:
        raise BadLabel("impossible age", f"{years!r} years")
    return float(years)

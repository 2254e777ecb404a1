"""Test accuracy per subgroup of faces, and the gap between the best and the worst subgroup.

Classification tasks only: a regression (``age_years``) has no subgroup figures yet.

Where a source describes its faces by several attributes (UTKFace: gender, age and race on every
face; :data:`mtl.data.datasets.ATTRIBUTES`), a test also measures every classification task the
source labels on each subgroup of each :data:`PARTITIONS` entry: gender x age group, and race.
fairlearn's :class:`~fairlearn.metrics.MetricFrame` does the slicing. A subgroup with fewer than
``min_faces`` test faces is listed with its count and no accuracy (no verdict on a handful of
faces), and stays out of the gap.

:class:`SubgroupMetrics` (a default callback) collects the final model's test predictions with
the faces' attributes, gathers them from every DDP rank in one collective that every rank enters
at the end of the test epoch, and keeps the result for the test report (``run.json``,
``test/subgroups.csv``, W&B, ``mtl report``, the model card).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import lightning as L
import numpy as np
import torch
from fairlearn.metrics import MetricFrame, count
from sklearn.metrics import accuracy_score

from mtl.data.datasets import ATTRIBUTES
from mtl.tasks import DEFAULT_AGE_EDGES, GENDERS, RACES, Task, age_group_names
from mtl.training.hooks import skip_unused_batch_hooks

PARTITIONS: dict[str, tuple[str, ...]] = {"gender x age": ("gender", "age"), "race": ("race",)}
"""Each way of splitting faces into subgroups: its name and the attributes it crosses."""
MIN_FACES = 30
"""Fewest test faces for a subgroup's accuracy to be reported (and count in the gap)."""


@dataclass(frozen=True)
class SubgroupRow:
    """One subgroup's accuracy on one task of one source (None: fewer than ``min_faces``)."""

    source: str
    task: str
    partition: str
    group: str
    count: int
    value: float | None


@dataclass(frozen=True)
class Gap:
    """Best minus worst subgroup accuracy of a task and partition (subgroups with enough
    faces only; None with fewer than two of them)."""

    source: str
    task: str
    partition: str
    best: str | None
    worst: str | None
    gap: float | None
    groups: int  # subgroups with enough faces


def group_names(
    attributes: np.ndarray, partition: Sequence[str], age_edges: Sequence[int]
) -> np.ndarray:
    """N names ("female, 26-35", "asian"), or None where an attribute is unknown; from N x A
    :data:`ATTRIBUTES` values."""
    ages = np.asarray(age_edges)
    parts = []
    for name in partition:
        values = attributes[:, ATTRIBUTES.index(name)]  # N
        if name == "age":
            labels = np.array(age_group_names(age_edges), dtype=object)
            index = np.searchsorted(ages, values, side="right")  # years -> group
        else:
            labels = np.array(GENDERS if name == "gender" else RACES, dtype=object)
            index = np.clip(values, 0, len(labels) - 1)
        parts.append(np.where(values >= 0, labels[index], None))
    names = parts[0]
    for more in parts[1:]:
        names = np.array([None if a is None or b is None else f"{a}, {b}" for a, b in
                          zip(names, more, strict=True)], dtype=object)  # fmt: skip
    return names


def subgroup_metrics(
    source: str,
    task: str,
    partition: str,
    truth: np.ndarray,
    predicted: np.ndarray,
    groups: np.ndarray,
    min_faces: int = MIN_FACES,
) -> tuple[list[SubgroupRow], Gap]:
    """Accuracy per subgroup (``groups``: N names, None unknown) and the gap between the best
    and the worst subgroup with at least ``min_faces`` faces."""
    known = np.array([g is not None for g in groups], dtype=bool)
    truth, predicted, groups = truth[known], predicted[known], groups[known].astype(str)
    frame = MetricFrame(
        metrics={"accuracy": accuracy_score, "faces": count},
        y_true=truth,
        y_pred=predicted,
        sensitive_features={partition: groups},
    )
    table = frame.by_group
    rows = []
    for group in table.index:
        faces = int(table.loc[group, "faces"])
        value = float(table.loc[group, "accuracy"]) if faces >= min_faces else None
        rows.append(SubgroupRow(source, task, partition, str(group), faces, value))
    enough = np.isin(groups, [r.group for r in rows if r.value is not None])
    gap = Gap(source, task, partition, None, None, None, int(len(set(groups[enough]))))
    if gap.groups >= 2:
        big = MetricFrame(
            metrics=accuracy_score,
            y_true=truth[enough],
            y_pred=predicted[enough],
            sensitive_features={partition: groups[enough]},
        )
        accuracy = big.by_group
        gap = Gap(source, task, partition, str(accuracy.idxmax()), str(accuracy.idxmin()),
                  float(big.difference(method="between_groups")), gap.groups)  # fmt: skip
    return rows, gap


@skip_unused_batch_hooks
class SubgroupMetrics(L.Callback):
    """Test accuracy per subgroup of the final model, for the test report (:attr:`rows`,
    :attr:`gaps`)."""

    def __init__(self, min_faces: int = MIN_FACES) -> None:
        self.min_faces = min_faces
        self.seen: list[dict[str, np.ndarray]] = []  # this rank's test batches, on the host
        self.rows: list[SubgroupRow] = []
        self.gaps: list[Gap] = []
        self.classified: list[Task] = []  # the run's classification tasks, set per test

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seen, self.rows, self.gaps = [], [], []
        # The classification columns, as the test metrics already hold them (chosen once).
        self.metrics = pl_module.stage_metrics("test")
        self.classified = [pl_module.tasks[j] for j in self.metrics.classified]

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: object, batch: dict,
        batch_idx: int, dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        if not isinstance(outputs, dict) or "attributes" not in batch:
            return
        predicted = torch.stack([outputs[t.name].argmax(1) for t in self.classified], 1)  # B x Tc
        columns = self.metrics.classified_index  # Tc
        seen = {"predicted": predicted, "targets": batch["targets"].index_select(1, columns),
                "mask": batch["mask"].index_select(1, columns), "source": batch["source"],
                "attributes": batch["attributes"]}  # fmt: skip
        described = (batch["attributes"] >= 0).any(1).cpu().numpy()  # test only: host read
        self.seen.append({k: v.cpu().numpy()[described] for k, v in seen.items()})

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seen = self.seen
        if trainer.world_size > 1:  # every rank, whatever it saw: one collective
            gathered: list = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, seen)
            seen = [part for rank in gathered for part in rank]
        self.seen = []
        if not seen:
            return
        merged = {k: np.concatenate([s[k] for s in seen]) for k in seen[0]}
        sources = self.metrics.source_names
        self.rows, self.gaps = measure(merged, sources, self.classified, self.min_faces)


def measure(
    seen: dict[str, np.ndarray], sources: Sequence[str], tasks: Sequence[Task], min_faces: int
) -> tuple[list[SubgroupRow], list[Gap]]:
    """Every source x task x partition with a labelled face whose attributes are known."""
    edges = next((t.age_edges for t in tasks if t.age_edges), DEFAULT_AGE_EDGES)
    rows, gaps = [], []
    for s, source in enumerate(sources):
        of_source = seen["source"] == s
        for j, task in enumerate(tasks):
            labelled = of_source & seen["mask"][:, j]
            if not labelled.any():
                continue
            for partition, attributes in PARTITIONS.items():
                groups = group_names(seen["attributes"][labelled], attributes, edges)
                if all(g is None for g in groups):
                    continue
                truth = seen["targets"][labelled, j].astype(np.int64)
                predicted = seen["predicted"][labelled, j]
                found, gap = subgroup_metrics(
                    source, task.name, partition, truth, predicted, groups, min_faces
                )
                rows += found
                gaps.append(gap)
    return rows, gaps


def as_record(rows: Sequence[SubgroupRow], gaps: Sequence[Gap]) -> dict[str, list[dict]]:
    """``run.json``'s ``subgroups`` entry."""
    return {"groups": [asdict(r) for r in rows], "gaps": [asdict(g) for g in gaps]}

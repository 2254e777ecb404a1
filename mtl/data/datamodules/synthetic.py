"""The built-in synthetic face data: several sources that each label a subset of tasks.

Like the papers' real mix (GENKI-4K labels smile, FER-2013 emotion, UTKFace gender and age),
each synthetic source draws full faces but exposes labels only for its own tasks, so the
multi-source, masked-label path runs with no download. Generation is deterministic per
(seed, source, split) and takes about half a millisecond per 48x48 face.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mtl.data.datamodules.base import SPLIT_NAMES, FaceDataModule, SourceData
from mtl.data.datasets import FaceArrayDataset, attributes_for, targets_for
from mtl.data.faces import FaceSettings
from mtl.data.splits import assign_folds
from mtl.data.synthetic_faces import FaceAttributes, render_faces, sample_attributes
from mtl.data.transforms import Augment, Augmentation
from mtl.tasks import DEFAULT_TASK_NAMES, LABEL_COLUMNS, TASK_NAMES, make_task


@dataclass
class SyntheticSource:
    """One synthetic source: its name, the tasks it labels and its split sizes."""

    name: str
    tasks: list[str] = field(default_factory=lambda: list(DEFAULT_TASK_NAMES))
    train: int = 2000
    val: int = 500
    test: int = 500

    @property
    def columns(self) -> set[str]:
        """The label columns its tasks read (``age`` also gives ``age_years``)."""
        return {make_task(t).column for t in self.tasks}


def default_sources() -> list[SyntheticSource]:
    """Three sources shaped like the papers' mix: smile-only, emotion-only, gender+age."""
    return [
        SyntheticSource("synth_genki", ["smile"]),
        SyntheticSource("synth_fer", ["emotion"]),
        SyntheticSource("synth_utk", ["gender", "age"]),
    ]


def label_table(attrs: FaceAttributes, columns: set[str]) -> dict[str, np.ndarray]:
    """The drawn attributes as a face cache's label columns; the others unknown (-1 / NaN)."""
    n = len(attrs.smile)
    table = {}
    for name, column in LABEL_COLUMNS.items():
        unknown = np.full(n, -1 if column.dtype == "class" else np.nan)
        table[name] = np.asarray(getattr(attrs, name)) if name in columns else unknown
    return table


class SyntheticDataModule(FaceDataModule):
    """Procedurally drawn faces from several synthetic sources (the default data)."""

    def __init__(
        self,
        sources: list[SyntheticSource] | None = None,
        image_size: int = 48,
        augmentation: Augmentation | None = None,
        k_folds: int = 4,
        val_fold: int | None = None,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            sources: the synthetic sources (default: smile-only, emotion-only, gender+age).
            image_size: side of the square grayscale images.
            augmentation: training augmentation (default none: the drawn faces already vary).
            k_folds: folds of each source's training split (cross-validation).
            val_fold: train on the other folds of the training split and validate on this one
                (the generated test split stays the test set); None: the generated val split.
            **kwargs: :class:`~mtl.data.datamodules.base.FaceDataModule` options (tasks, age
                edges, batch size, seed, balance …).
        """
        self.synthetic = default_sources() if sources is None else list(sources)
        if not self.synthetic:
            raise ValueError("SyntheticDataModule needs at least one source")
        for spec in self.synthetic:
            unknown = set(spec.tasks) - set(TASK_NAMES)
            if unknown:
                raise ValueError(f"source {spec.name!r} lists unknown task(s) {sorted(unknown)}")
        self.image_size, self.augmentation = image_size, augmentation
        if val_fold is not None and not 0 <= val_fold < k_folds:
            raise ValueError(f"val_fold must be in 0..{k_folds - 1}, got {val_fold}")
        self.k_folds, self.val_fold = k_folds, val_fold
        super().__init__(**kwargs)

    def labelled_tasks(self) -> list[str]:
        columns = set().union(*(spec.columns for spec in self.synthetic))
        return [t for t in TASK_NAMES if make_task(t).column in columns]

    def face_settings(self) -> FaceSettings:
        return FaceSettings(detector="none", size=self.image_size)

    def generate(self, index: int, split: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Synthetic source ``index``'s ``split``: N x H x W uint8 faces and their label table,
        deterministic in (seed, index, split)."""
        spec = self.synthetic[index]
        rng = np.random.default_rng([self.seed, index, SPLIT_NAMES.index(split)])
        attrs = sample_attributes(getattr(spec, split), rng)
        images = render_faces(attrs, rng, self.image_size)  # N x H x W uint8
        return images, label_table(attrs, spec.columns)

    def make_split(self, index: int, split: str, source: int = 0) -> FaceArrayDataset:
        """Synthetic source ``index``'s split as a dataset (``source``: its index among the
        run's sources); with ``val_fold``, train and val are folds of the training split."""
        spec = self.synthetic[index]
        folded = self.val_fold is not None and split != "test"
        images, table = self.generate(index, "train" if folded else split)
        targets = targets_for(table, self.tasks)  # N x T
        attributes = attributes_for(table, len(images))  # N x A
        if folded:
            table["id"] = np.arange(len(images))
            held_out = assign_folds(table, table["id"], self.k_folds, self.seed) == self.val_fold
            keep = held_out if split == "val" else ~held_out  # N
            images, targets, attributes = images[keep], targets[keep], attributes[keep]
        augment = None
        if split == "train" and self.augmentation is not None:
            augment = Augment(self.augmentation, self.image_size, self.seed, spec.name)
        return FaceArrayDataset(images, targets, source, augment, attributes)

    def load_sources(self, stage: str | None) -> list[SourceData]:
        # Sources that label none of the run's tasks would only add all-masked samples.
        wanted = {t.column for t in self.tasks}
        active = [i for i, spec in enumerate(self.synthetic) if spec.columns & wanted]
        return [
            SourceData(
                self.synthetic[i].name,
                [t.name for t in self.tasks if t.column in self.synthetic[i].columns],
                *(self.make_split(i, split, source) for split in SPLIT_NAMES),
            )
            for source, i in enumerate(active)
        ]

"""In-memory face datasets and the batch contract of the whole project.

A source's faces are one uint8 image array plus an N x T targets table, one column per task in
registry order (:mod:`mtl.tasks`). Each sample becomes a dict; default collation then gives::

    image    float32  B x C x H x W   (values in [0, 1])
    targets  float32  B x T           (class index for a classification task, the value for a
                                       regression task; NaN where the sample has no label)
    mask     bool     B x T           (True where the sample is labelled for the task)
    source   int64    B               (index of the source the sample came from)
    attributes int64  B x A           (what describes the face, :data:`ATTRIBUTES`: gender,
                                       age in whole years, race; -1 where unknown; for metrics
                                       per subgroup, never a training target)

Class indices are exact in float32; losses and metrics of classification tasks take
``targets[:, j].long()`` on the masked rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from mtl.data.device import FaceArrays, face_arrays
from mtl.tasks import Task

ATTRIBUTES: tuple[str, ...] = ("gender", "age", "race")
"""The label columns every sample carries as ``attributes`` (age in whole years)."""

Transform = Callable[[np.ndarray], np.ndarray]
"""An image transform on one ``H x W`` (or ``H x W x C``) uint8 array."""


def targets_for(table: dict[str, np.ndarray], tasks: Sequence[Task]) -> np.ndarray:
    """N x T float targets of ``tasks`` from a label table (the face cache's columns)."""
    columns = [task.targets(table[task.column]) for task in tasks]
    return np.stack(columns, axis=1).astype(np.float32)  # N x T, NaN where unlabelled


def attributes_for(table: dict[str, np.ndarray], n: int) -> np.ndarray:
    """N x A int64 :data:`ATTRIBUTES` from a label table (-1 where unknown or absent)."""
    columns = []
    for name in ATTRIBUTES:
        values = np.asarray(table.get(name, np.full(n, -1)))
        if values.dtype.kind == "f":
            values = np.where(np.isnan(values), -1, np.floor(np.nan_to_num(values)))
        columns.append(values.astype(np.int64))
    return np.stack(columns, axis=1)  # N x A


class FaceArrayDataset(Dataset):
    """One source's faces held as a uint8 array with a float targets table (NaN: no label)."""

    def __init__(
        self,
        images: np.ndarray,
        targets: np.ndarray,
        source: int = 0,
        transform: Transform | None = None,
        attributes: np.ndarray | None = None,
    ) -> None:
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(
                f"images must be uint8 N x H x W (x C), got {images.dtype} {images.shape}"
            )
        if targets.ndim != 2 or len(targets) != len(images):
            raise ValueError(f"targets must be N x T with N={len(images)}, got {targets.shape}")
        self.images = images  # N x H x W (x C)
        self.targets = torch.as_tensor(targets, dtype=torch.float32)  # N x T
        self.mask = ~torch.isnan(self.targets)  # N x T
        self.source = torch.tensor(source, dtype=torch.long)  # the same for every item
        if attributes is None:
            attributes = np.full((len(images), len(ATTRIBUTES)), -1)
        self.attributes = torch.as_tensor(attributes, dtype=torch.long)  # N x A
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        img = self.images[index]
        if self.transform is not None:
            img = self.transform(img)
        image = torch.from_numpy(np.ascontiguousarray(img)).float().div_(255.0)
        image = image.unsqueeze(0) if image.ndim == 2 else image.permute(2, 0, 1)  # C x H x W
        return {
            "image": image,
            "targets": self.targets[index],
            "mask": self.mask[index],
            "source": self.source,
            "attributes": self.attributes[index],
        }

    def arrays(self) -> FaceArrays:
        """The faces, targets and augmentation settings, for a device-resident run."""
        settings = getattr(self.transform, "settings", None)
        if self.transform is not None and settings is None:
            raise ValueError(
                f"device_data cannot reproduce the transform {self.transform!r} on the device"
            )
        return FaceArrays(self.images, self.targets, settings)

    def set_epoch(self, epoch: int, rank: int = 0) -> None:
        """Tell the augmentation which random stream to draw (see :mod:`mtl.data.transforms`)."""
        set_epoch = getattr(self.transform, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch, rank)


class TaskView(Dataset):
    """A source's dataset seen with a run's task columns and its source index in the run.

    ``columns[k]`` is the run column of the dataset's column ``k``; run columns the dataset
    does not have are unlabelled (NaN, mask False).
    """

    def __init__(self, dataset: Dataset, columns: Sequence[int], num_tasks: int, source: int):
        self.dataset = dataset
        self.columns = torch.as_tensor(list(columns), dtype=torch.long)  # dataset col -> run col
        self.num_tasks = num_tasks
        self.source = torch.tensor(source, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = dict(self.dataset[index])
        targets = torch.full((self.num_tasks,), float("nan"))  # T
        targets[self.columns] = item["targets"]
        item.update(targets=targets, mask=~torch.isnan(targets), source=self.source)
        return item

    def arrays(self) -> FaceArrays:
        """The wrapped dataset's arrays with the run's task columns."""
        inner = face_arrays(self.dataset)
        targets = torch.full((len(inner.targets), self.num_tasks), float("nan"))  # N x T
        targets[:, self.columns] = inner.targets
        return FaceArrays(inner.images, targets, inner.augmentation)

    def set_epoch(self, epoch: int, rank: int = 0) -> None:
        set_epoch = getattr(self.dataset, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch, rank)


class WithSource(Dataset):
    """A dataset whose samples carry ``source`` = ``index`` (its place among the sources an
    evaluation reports on)."""

    def __init__(self, dataset: Dataset, index: int) -> None:
        self.dataset = dataset
        self.source = torch.tensor(index, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return dict(self.dataset[index], source=self.source)

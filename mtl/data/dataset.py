"""The in-memory face dataset every source produces, and the batch contract.

A source's prepared data is a uint8 image array plus a targets table and a label mask, one
column per task in the run's task order. Each sample becomes a dict; default collation then
gives the batch contract of the whole project::

    image   float32  B x C x H x W   (values in [0, 1])
    targets int64    B x T           (IGNORE_INDEX where the sample has no label)
    mask    bool     B x T           (True where the sample is labelled for the task)
    source  int64    B               (index of the source the sample came from)
    age_years float32 B              (age in years for age regression; NaN where unknown)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from mtl.tasks import IGNORE_INDEX

Transform = Callable[[np.ndarray], np.ndarray]
"""An image transform on one ``H x W`` (or ``H x W x C``) uint8 array."""


class FaceArrayDataset(Dataset):
    """Faces held as one uint8 array with a targets table and a label mask."""

    def __init__(
        self,
        images: np.ndarray,
        targets: np.ndarray,
        source: int = 0,
        transform: Transform | None = None,
        age_years: np.ndarray | None = None,
    ) -> None:
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(
                f"images must be uint8 N x H x W (x C), got {images.dtype} {images.shape}"
            )
        if targets.ndim != 2 or len(targets) != len(images):
            raise ValueError(f"targets must be N x T with N={len(images)}, got {targets.shape}")
        self.images = images  # N x H x W (x C)
        self.targets = torch.as_tensor(targets, dtype=torch.long)  # N x T
        self.mask = self.targets != IGNORE_INDEX  # N x T
        self.source = source
        self._source = torch.tensor(source, dtype=torch.long)  # same for every item: build once
        self.transform = transform
        years = np.full(len(images), np.nan) if age_years is None else np.asarray(age_years)
        if years.shape != (len(images),):
            raise ValueError(f"age_years must have N={len(images)} values, got {years.shape}")
        self.age_years = torch.as_tensor(years, dtype=torch.float32)  # N, NaN = unknown

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
            "source": self._source,
            "age_years": self.age_years[index],
        }

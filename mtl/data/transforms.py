"""Training-time augmentation with albumentations, as in the papers.

Pad-and-random-crop (Sang & Cuong: "add margins … crop a random area … the same size as the
original"), horizontal flip and a random rotation of up to ±15° with black fill. Applied per
sample inside DataLoader workers, training split only.

Albumentations keeps its own random state, which forked DataLoader workers would all inherit
identically; :class:`Augment` therefore reseeds itself from the worker's torch seed (different per
worker and per epoch, and reproducible from the loader's seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np
from torch.utils.data import get_worker_info


@dataclass(frozen=True)
class Augmentation:
    """Augmentation settings; a zero turns that step off.

    Args:
        pad: pixels of black added on each side before a random crop back to the input size.
        hflip: probability of a horizontal flip.
        rotate: maximum rotation in degrees (uniform in ±rotate), black fill.
    """

    pad: int = 4
    hflip: float = 0.5
    rotate: float = 15.0

    def __post_init__(self) -> None:
        if self.pad < 0 or not 0 <= self.hflip <= 1 or self.rotate < 0:
            raise ValueError(f"invalid augmentation settings: {self}")


class Augment:
    """Callable on one ``H x W`` (or ``H x W x C``) uint8 face; returns the same shape."""

    def __init__(self, settings: Augmentation, size: int, seed: int = 0) -> None:
        steps: list[A.BasicTransform] = []
        if settings.pad:
            side = size + 2 * settings.pad
            steps += [
                A.PadIfNeeded(side, side, border_mode=cv2.BORDER_CONSTANT, fill=0),
                A.RandomCrop(size, size),
            ]
        if settings.hflip:
            steps.append(A.HorizontalFlip(p=settings.hflip))
        if settings.rotate:
            steps.append(
                A.Rotate(limit=settings.rotate, border_mode=cv2.BORDER_CONSTANT, fill=0, p=1)
            )
        self.compose = A.Compose(steps, seed=seed)
        self.seed = seed
        self._seeded_for: int | None = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        info = get_worker_info()
        if info is not None and info.seed != self._seeded_for:
            self.compose.set_random_seed(info.seed % 2**32)
            self._seeded_for = info.seed
        return self.compose(image=image)["image"]

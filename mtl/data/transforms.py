"""Training-time augmentation with albumentations, as in the papers.

Pad-and-random-crop (Sang & Cuong: "add margins … crop a random area … the same size as the
original"), horizontal flip and a random rotation of up to ±15° with black fill. Applied per
sample inside DataLoader workers, training split only.

Random streams: albumentations keeps its own random state. :class:`Augment` reseeds it from
(seed, source name, epoch, DDP rank, DataLoader worker) whenever that key changes, so an epoch's
augmentation never depends on what ran before it (a run resumed at epoch k draws exactly what
an uninterrupted run draws), workers, ranks and sources never repeat each other, and the same
configuration reproduces the same augmentation. The DataModule calls :meth:`Augment.set_epoch`
through its sampler at the start of every epoch, before the loader's workers start.
"""

from __future__ import annotations

import zlib
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

    def __init__(self, settings: Augmentation, size: int, seed: int = 0, name: str = "") -> None:
        """``name`` (the source's) keeps two sources with the same seed on different streams."""
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
        self.settings = settings
        self.seed, self.salt, self.epoch, self.rank = seed, zlib.crc32(name.encode()), 0, 0
        self._stream: tuple[int, int, int] | None = None  # (epoch, rank, worker) now drawn

    def set_epoch(self, epoch: int, rank: int = 0) -> None:
        """Draw the stream of ``epoch`` on DDP rank ``rank`` from the next image on."""
        self.epoch, self.rank = epoch, rank

    def stream_seed(self, worker: int) -> int:
        """The albumentations seed of (seed, name, epoch, rank, worker); worker -1: main process."""
        key = [self.seed, self.salt, self.epoch, self.rank, worker + 1]
        return int(np.random.SeedSequence(key).generate_state(1)[0])

    def __call__(self, image: np.ndarray) -> np.ndarray:
        info = get_worker_info()
        stream = (self.epoch, self.rank, -1 if info is None else info.id)
        if stream != self._stream:
            self.compose.set_random_seed(self.stream_seed(stream[2]))
            self._stream = stream
        return self.compose(image=image)["image"]

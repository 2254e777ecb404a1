"""Training faces held on the accelerator: the whole uint8 cache on the device, each batch
gathered and augmented there.

On a GPU, per-sample augmentation in CPU DataLoader workers caps training far below what the
network can do (Multi-task BKNet is ~0.3 GFLOP per image step). With ``device_data`` the
DataModule's training loader yields only the balanced sampler's indices; the batch is built on
the device in :meth:`FaceDataModule.on_after_batch_transfer`: one gather from the uint8 faces and
one affine warp that applies the same augmentation as :mod:`mtl.data.transforms` (pad-and-random-
crop as an integer shift with black fill, horizontal flip, rotation of up to ±rotate degrees),
with every source's own settings. The warp interpolates once instead of after each step, so
pixels differ slightly from the CPU path; the distribution of augmentations is the same.

Random draws come from a generator on the device seeded from (seed, epoch, rank), so an epoch's
augmentation never depends on the epochs before it, like the CPU path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mtl.data.transforms import Augmentation


@dataclass
class FaceArrays:
    """One source's training faces as arrays: what a device-resident run copies to the device."""

    images: np.ndarray  # N x H x W (x C) uint8
    targets: torch.Tensor  # N x T float, the run's task columns, NaN where unlabelled
    augmentation: Augmentation | None


def channels_first(images: torch.Tensor) -> torch.Tensor:
    """N x H x W (grey) or N x H x W x C -> N x C x H x W."""
    return images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)


class DeviceAugment:
    """Batched pad-crop / flip / rotate, per-source settings, as one affine warp."""

    def __init__(self, settings: Sequence[Augmentation | None], size: int) -> None:
        off = Augmentation(pad=0, hflip=0.0, rotate=0.0)
        chosen = [s or off for s in settings]
        self.size = size
        self.pad = torch.tensor([float(s.pad) for s in chosen])  # S
        self.hflip = torch.tensor([s.hflip for s in chosen])  # S
        self.rotate = torch.tensor([math.radians(s.rotate) for s in chosen])  # S

    def to(self, device: torch.device) -> DeviceAugment:
        self.pad, self.hflip, self.rotate = (
            t.to(device) for t in (self.pad, self.hflip, self.rotate)
        )
        return self

    def __call__(
        self, images: torch.Tensor, source: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """``images`` B x C x H x W float, ``source`` B: the augmented batch, same shape."""
        b, device = images.shape[0], images.device
        pad, hflip, rotate = self.pad[source], self.hflip[source], self.rotate[source]  # B each
        u = torch.rand(b, 4, device=device, generator=generator)  # B x 4
        shift = torch.floor(u[:, :2] * (2 * pad[:, None] + 1)) - pad[:, None]  # B x 2, pixels
        flip = torch.where(u[:, 2] < hflip, -1.0, 1.0)  # B
        angle = (2 * u[:, 3] - 1) * rotate  # B, radians
        cos, sin = torch.cos(angle), torch.sin(angle)
        # Output -> input coordinates (grid_sample's normalised [-1, 1]): undo the rotation,
        # then the flip, then the crop's shift.
        theta = torch.zeros(b, 2, 3, device=device)
        theta[:, 0, 0], theta[:, 0, 1] = flip * cos, -flip * sin
        theta[:, 1, 0], theta[:, 1, 1] = sin, cos
        theta[:, :, 2] = shift * (2.0 / self.size)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # B x H x W x 2
        return F.grid_sample(
            images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )


class DeviceFaces:
    """Every training face of a run, concatenated in source order (the sampler's index space),
    moved to the device of the first batch of indices it is asked to build."""

    def __init__(self, parts: Sequence[FaceArrays], seed: int = 0) -> None:
        shapes = {p.images.shape[1:] for p in parts}
        if len(shapes) != 1:
            raise ValueError(f"device_data needs faces of one shape in every source, got {shapes}")
        self.images = channels_first(torch.from_numpy(np.concatenate([p.images for p in parts])))
        self.targets = torch.cat([p.targets for p in parts])  # N x T
        self.mask = ~torch.isnan(self.targets)  # N x T
        self.source = torch.cat(
            [torch.full((len(p.images),), i, dtype=torch.long) for i, p in enumerate(parts)]
        )  # N
        augmentations = [p.augmentation for p in parts]
        self.augment = (
            DeviceAugment(augmentations, self.images.shape[-1]) if any(augmentations) else None
        )
        self.seed, self.epoch, self.rank = seed, 0, 0
        self.generator: torch.Generator | None = None

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int, rank: int = 0) -> None:
        """Draw the augmentation stream of (seed, epoch, rank) from the next batch on."""
        self.epoch, self.rank = epoch, rank
        if self.generator is not None:
            self.generator.manual_seed(self._stream_seed())

    def _stream_seed(self) -> int:
        key = [self.seed, self.epoch, self.rank, 0xD1CE]
        return int(np.random.SeedSequence(key).generate_state(1)[0])

    def _move(self, device: torch.device) -> None:
        self.images, self.targets, self.mask, self.source = (
            t.to(device) for t in (self.images, self.targets, self.mask, self.source)
        )
        if self.augment is not None:
            self.augment.to(device)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(self._stream_seed())

    def batch(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """The training batch of ``indices`` (B, on the target device), in the batch contract
        of :mod:`mtl.data.datasets`."""
        if self.generator is None or self.images.device != indices.device:
            self._move(indices.device)
        source = self.source[indices]  # B
        image = self.images[indices].float().div_(255.0)  # B x C x H x W
        if self.augment is not None:
            image = self.augment(image, source, self.generator)
        return {
            "image": image,
            "targets": self.targets[indices],
            "mask": self.mask[indices],
            "source": source,
        }

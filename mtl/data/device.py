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

The same path serves a CPU run: the faces in the training process's memory, each batch one
gather and one warp there. On two cores it is 6.6-14 times faster per batch than the
DataLoader's per-sample augmentation (``mtl bench data``: about 3 ms against 30 ms for 128 real
faces), and no worker takes a core from training. :func:`choose_data_path` makes it the
default wherever the faces fit (``device_data: null``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

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


MEMORY_SHARE = 0.25
"""The in-memory path is chosen only when one more copy of the training faces, for every process
that shares the memory (all DDP ranks of a CPU run; one per GPU), takes at most this share of the
device's total memory: the rest stays free for the network, the optimiser and evaluation."""


@dataclass(frozen=True)
class DataPath:
    """How a run's training batches are made, and why (said on the console, kept in ``run.json``
    and in checkpoints, so a resumed run keeps it)."""

    in_memory: bool
    reason: str

    @property
    def name(self) -> str:
        """The path in two words, as tables show it."""
        return "in memory" if self.in_memory else "DataLoader"

    def describe(self) -> str:
        how = "faces in memory, batches augmented there" if self.in_memory else "DataLoader"
        return f"{how} ({self.reason})"


CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
"""Where a container, a SLURM job or a systemd unit caps this process's memory below the host's:
the cgroup file system, and the file naming this process's own group in it."""


def total_memory(device: torch.device) -> int | None:
    """Bytes of memory ``device`` has in all (a GPU's; this machine's RAM, or this process's
    cgroup limit where lower); None if unknown. Total, not free: the choice must not change with
    what another process holds right now."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type != "cpu":
        return None
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows) or no such name
        return None
    try:
        groups = PROC_CGROUP.read_text()
    except OSError:  # not Linux
        groups = ""
    limits = map(container_limit, cgroup_limit_files(groups, CGROUP_ROOT))
    return min([ram, *(n for n in limits if n is not None)])


def cgroup_limit_files(groups: str, root: Path) -> list[Path]:
    """The memory-limit files of the groups this process is in (``groups``: the text of
    ``/proc/self/cgroup``) and of every group above them, a limit above applying below too:
    cgroup v2 (``memory.max``, mounted at ``root`` or, hybrid, ``root/unified``) and v1 (the
    memory controller's ``memory.limit_in_bytes``)."""
    files = []
    for line in groups.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers, group = parts[1], PurePosixPath(parts[2])
        if controllers == "":
            mounts, name = [root, root / "unified"], "memory.max"
        elif "memory" in controllers.split(","):
            mounts, name = [root / "memory"], "memory.limit_in_bytes"
        else:
            continue
        for folder in (group, *group.parents):
            files += [mount / folder.relative_to("/") / name for mount in mounts]
    return files


def container_limit(path: Path) -> int | None:
    """The memory limit a cgroup file states, in bytes; None where there is none or no file
    (v2 writes ``max``; v1's "no limit" is a huge number, which the machine's RAM undercuts)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def face_arrays(dataset: object) -> FaceArrays:
    """``dataset.arrays()``; ValueError where the dataset (a custom one, a ``Subset``) has no
    faces as arrays to hold in memory."""
    arrays = getattr(dataset, "arrays", None)
    if not callable(arrays):
        raise ValueError(f"{type(dataset).__name__} has no faces as arrays (no arrays())")
    return arrays()


def one_shape(parts: Sequence[FaceArrays]) -> None:
    """Raise ValueError unless every part's faces have the same shape (one tensor holds them)."""
    shapes = {p.images.shape[1:] for p in parts}
    if len(shapes) != 1:
        raise ValueError(f"device_data needs faces of one shape in every source, got {shapes}")


def choose_data_path(
    datasets: Sequence[object], device: torch.device, processes: int = 1
) -> DataPath:
    """The default training data path (``device_data: null``) for ``datasets`` (every source's
    training set, each with ``arrays()``) on ``device``, with ``processes`` sharing its memory:
    in memory when the augmentation can be done there and the faces fit :data:`MEMORY_SHARE`."""
    try:
        parts = [face_arrays(d) for d in datasets]
        one_shape(parts)
    except ValueError as err:
        return DataPath(False, str(err))
    faces = sum(p.images.nbytes for p in parts)
    total = total_memory(device)
    if total is None:
        return DataPath(False, f"the memory of {device.type} is unknown")
    need, budget = faces * processes, MEMORY_SHARE * total
    size = f"{faces / 2**20:,.1f} MiB" if faces >= 2**17 else f"{faces:,} bytes"
    size += " of faces"
    size += f" x {processes} processes" if processes > 1 else ""
    if need > budget:
        share = f"{MEMORY_SHARE:.0%} of the {device.type}'s {total / 2**30:.0f} GiB"
        return DataPath(False, f"{size} exceed {share}")
    return DataPath(True, f"{size} on the {device.type}")


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
        one_shape(parts)
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

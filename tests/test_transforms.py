"""Augmentation: shapes kept, black fill, seeded, and different in every DataLoader worker."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mtl.data.transforms import Augment, Augmentation


def test_shape_dtype_and_black_fill():
    face = np.full((48, 48), 255, np.uint8)
    out = [Augment(Augmentation(), 48, seed=s)(face) for s in range(8)]
    assert all(o.shape == (48, 48) and o.dtype == np.uint8 for o in out)
    assert any((o == 0).any() for o in out)  # padding / rotation corners are black


def test_seeded_and_switchable():
    face = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    a, b = Augment(Augmentation(), 48, seed=3), Augment(Augmentation(), 48, seed=3)
    for _ in range(3):
        np.testing.assert_array_equal(a(face), b(face))
    off = Augment(Augmentation(pad=0, hflip=0, rotate=0), 48)
    np.testing.assert_array_equal(off(face), face)


class _Faces(Dataset):
    def __init__(self) -> None:
        self.face = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
        self.augment = Augment(Augmentation(), 48)

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.augment(self.face))


def test_workers_do_not_repeat_each_other():
    loader = DataLoader(
        _Faces(), batch_size=4, num_workers=2, generator=torch.Generator().manual_seed(0)
    )
    first, second = list(loader)
    assert not torch.equal(first, second)  # worker 0 and worker 1 drew different augmentations
    again = list(
        DataLoader(
            _Faces(), batch_size=4, num_workers=2, generator=torch.Generator().manual_seed(0)
        )
    )
    assert torch.equal(first, again[0])  # and the same ones again for the same loader seed


def test_streams_differ_by_rank_and_epoch_and_repeat_for_the_same_key():
    """Under DDP each rank draws its own stream; an epoch's stream never depends on earlier
    epochs, so a resumed run draws exactly what an uninterrupted one did."""
    face = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)

    def draws(epoch: int, rank: int, warmup_epochs: int = 0) -> list[np.ndarray]:
        augment = Augment(Augmentation(), 48, seed=1, name="genki4k")
        for e in range(warmup_epochs):  # what ran before must not matter
            augment.set_epoch(e, rank)
            augment(face)
        augment.set_epoch(epoch, rank)
        return [augment(face) for _ in range(4)]

    base = draws(epoch=2, rank=0)
    assert all(
        np.array_equal(a, b) for a, b in zip(base, draws(2, 0, warmup_epochs=2), strict=True)
    )
    assert not all(np.array_equal(a, b) for a, b in zip(base, draws(2, 1), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(base, draws(3, 0), strict=True))

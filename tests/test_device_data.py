"""``data.device_data``: the training faces on the device, batches gathered and augmented there
with the CPU path's augmentation."""

from __future__ import annotations

import numpy as np
import torch

from mtl.cli import main
from mtl.data import SyntheticDataModule, SyntheticSource
from mtl.data.device import DeviceAugment, DeviceFaces, FaceArrays
from mtl.data.transforms import Augmentation
from tests.conftest import tiny_fit_args

OFF = Augmentation(pad=0, hflip=0.0, rotate=0.0)


def faces(n: int = 6, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, size, size, generator=g)  # B x 1 x H x W


def test_augmentation_off_is_the_identity_and_a_flip_is_exact():
    x, source = faces(), torch.zeros(6, dtype=torch.long)
    g = torch.Generator().manual_seed(1)
    assert torch.allclose(DeviceAugment([OFF], 16)(x, source, g), x, atol=1e-6)
    flip = Augmentation(pad=0, hflip=1.0, rotate=0.0)
    assert torch.allclose(DeviceAugment([flip], 16)(x, source, g), x.flip(-1), atol=1e-6)


def test_pad_and_crop_is_an_integer_shift_with_black_fill():
    x, source = faces(200), torch.zeros(200, dtype=torch.long)
    out = DeviceAugment([Augmentation(pad=3, hflip=0.0, rotate=0.0)], 16)(
        x, source, torch.Generator().manual_seed(2)
    )
    shifts = set()
    for img, aug in zip(x[:, 0], out[:, 0], strict=True):
        match = [
            (dy, dx)
            for dy in range(-3, 4)
            for dx in range(-3, 4)
            if torch.allclose(aug, shifted(img, dy, dx), atol=1e-5)
        ]
        assert len(match) == 1
        shifts.add(match[0])
    assert len(shifts) > 30  # all 49 shifts are drawn, uniformly


def shifted(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[y, x] = img[y + dy, x + dx], zero outside."""
    out = torch.zeros_like(img)
    h, w = img.shape
    ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
    yi, xi = slice(max(0, dy), min(h, h + dy)), slice(max(0, dx), min(w, w + dx))
    out[ys, xs] = img[yi, xi]
    return out


def test_each_source_keeps_its_own_settings_and_epochs_reseed():
    a = np.full((4, 16, 16), 255, np.uint8)
    parts = [
        FaceArrays(a, torch.zeros(4, 1), None),  # no augmentation
        FaceArrays(a, torch.ones(4, 1), Augmentation(pad=4, hflip=0.5, rotate=15.0)),
    ]
    store = DeviceFaces(parts, seed=3)
    batch = store.batch(torch.arange(8))
    assert (batch["image"][:4] == 1).all()  # source 0 untouched
    assert (batch["image"][4:] < 1).any()  # source 1 shifted / rotated: black borders
    assert batch["source"].tolist() == [0] * 4 + [1] * 4
    store.set_epoch(1)
    first = store.batch(torch.arange(8))["image"]
    store.set_epoch(1)
    assert torch.equal(store.batch(torch.arange(8))["image"], first)
    store.set_epoch(2)
    assert not torch.equal(store.batch(torch.arange(8))["image"], first)


def test_a_device_data_datamodule_serves_the_batch_contract():
    small = [SyntheticSource("s", train=16, val=4, test=4)]
    dm = SyntheticDataModule(small, batch_size=8, device_data=True, augmentation=Augmentation())
    dm.setup("fit")
    indices = next(iter(dm.train_dataloader()))
    batch = dm.on_after_batch_transfer(indices, 0)
    assert batch["image"].shape == (8, 1, 48, 48) and batch["image"].dtype == torch.float32
    assert batch["targets"].shape == batch["mask"].shape == (8, 4)
    assert torch.equal(batch["mask"], ~torch.isnan(batch["targets"]))


def test_fit_with_device_data_and_channels_last(in_tmp):
    cli_args = tiny_fit_args() + ["--data.device_data=true", "--model.channels_last=true"]
    main(cli_args)

"""``data.device_data``: the training faces on the device, batches gathered and augmented there
with the CPU path's augmentation; by default wherever the faces fit."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mtl.cli import main, run_cli
from mtl.data import SyntheticDataModule, SyntheticSource
from mtl.data.device import (
    MEMORY_SHARE,
    DeviceAugment,
    DeviceFaces,
    FaceArrays,
    cgroup_limit_files,
    choose_data_path,
    container_limit,
    total_memory,
)
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


class Faces:
    """A training set as :func:`choose_data_path` sees it: ``arrays()``, or the reason it has
    none."""

    def __init__(self, n: int, shape: tuple[int, ...] = (48, 48), refuse: str = "") -> None:
        self.images, self.refuse = np.zeros((n, *shape), np.uint8), refuse

    def arrays(self) -> FaceArrays:
        if self.refuse:
            raise ValueError(self.refuse)
        return FaceArrays(self.images, torch.zeros(len(self.images), 1), Augmentation())


def test_the_default_path_is_in_memory_where_the_faces_fit(monkeypatch):
    cpu = torch.device("cpu")
    faces = [Faces(100), Faces(60)]  # 160 x 48 x 48 bytes
    need = 160 * 48 * 48
    monkeypatch.setattr("mtl.data.device.total_memory", lambda device: int(need / MEMORY_SHARE))
    path = choose_data_path(faces, cpu)
    assert path.in_memory and "on the cpu" in path.reason
    # every process on the machine holds its own copy: two DDP ranks need twice the memory
    two = choose_data_path(faces, cpu, processes=2)
    assert not two.in_memory and "x 2 processes exceed 25%" in two.reason
    monkeypatch.setattr("mtl.data.device.total_memory", lambda device: None)
    assert "unknown" in choose_data_path(faces, cpu).reason


def test_faces_the_memory_path_cannot_serve_go_through_the_dataloader():
    cpu = torch.device("cpu")
    custom = choose_data_path([Faces(4), torch.utils.data.TensorDataset(torch.zeros(4))], cpu)
    assert (
        not custom.in_memory
        and custom.reason == "TensorDataset has no faces as arrays (no arrays())"
    )
    refused = choose_data_path([Faces(4), Faces(4, refuse="cannot reproduce Blur")], cpu)
    assert not refused.in_memory and refused.reason == "cannot reproduce Blur"
    mixed = choose_data_path([Faces(4), Faces(4, (48, 48, 3))], cpu)
    assert not mixed.in_memory and "faces of one shape" in mixed.reason


def test_without_augmentation_both_paths_make_the_same_batches():
    """The default moved training from the DataLoader to the memory path: with no augmentation
    (the synthetic data's default) every batch is the same, so what a test measured holds."""
    small = [SyntheticSource("a", ["smile"], 20, 4, 4), SyntheticSource("b", ["age"], 12, 4, 4)]
    batches = {}
    for device_data in (False, True):
        dm = SyntheticDataModule(small, batch_size=8, device_data=device_data)
        dm.setup("fit")
        batches[device_data] = [dm.on_after_batch_transfer(b, 0) for b in dm.train_dataloader()]
    assert len(batches[False]) == len(batches[True]) == 5  # 2 sources x 20 (balanced) / 8
    for loader, memory in zip(batches[False], batches[True], strict=True):
        for key in ("image", "targets", "mask", "source"):
            torch.testing.assert_close(loader[key], memory[key], rtol=0, atol=0, equal_nan=True)


def test_without_augmentation_both_paths_train_the_same_run(tmp_path, monkeypatch):
    """Beyond the batches, neither path draws from the global generator (dropout's): the same
    weights bit for bit and the same logged history."""
    runs = {}
    for device_data in ("false", "true"):
        folder = tmp_path / device_data
        folder.mkdir()
        monkeypatch.chdir(folder)
        args = [*tiny_fit_args(train=32, val=8, test=8), "--data.batch_size=16",
                "--trainer.max_epochs=2", f"--data.device_data={device_data}"]  # fmt: skip
        run_cli(args)
        version = folder / "runs" / "mtl" / "version_0"
        state = torch.load(version / "checkpoints" / "last.ckpt", weights_only=True)
        runs[device_data] = (state["state_dict"], (version / "metrics.csv").read_text())
    (loader, loader_csv), (memory, memory_csv) = runs["false"], runs["true"]
    torch.testing.assert_close(loader, memory, rtol=0, atol=0)
    assert loader_csv == memory_csv


def ran(folder) -> dict:
    return json.loads((folder / "runs" / "mtl" / "version_0" / "run.json").read_text())["ran"]


def test_a_run_says_its_data_path_and_a_resume_keeps_it(in_tmp, monkeypatch):
    args = [*tiny_fit_args(train=32, val=8, test=8), "--data.batch_size=16"]
    first = run_cli(args)
    assert first.datamodule.data_path.in_memory
    assert ran(in_tmp)["training_data"].startswith("faces in memory")
    assert ran(in_tmp)["data_path"] == "in memory"  # the report's "training data" column
    ckpt = in_tmp / "runs" / "mtl" / "version_0" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)["SyntheticDataModule"]
    assert state["in_memory"] is True and state["reason"].endswith("of faces on the cpu")
    # resumed where the faces would no longer fit: the checkpoint's path, not a new choice
    monkeypatch.setattr("mtl.data.device.total_memory", lambda device: 1)
    resumed = run_cli([*args, "--trainer.max_epochs=2", "--ckpt_path=last"])
    assert resumed.datamodule.data_path.in_memory
    reason = resumed.datamodule.data_path.reason
    assert reason == "as the checkpoint trained: " + state["reason"]
    again = run_cli([*args, "--trainer.max_epochs=3", "--ckpt_path=last"])
    assert again.datamodule.data_path.reason == reason  # not prefixed twice
    # a fresh run there chooses the DataLoader; data.device_data always wins
    fresh = run_cli(args)
    assert not fresh.datamodule.data_path.in_memory
    forced = run_cli([*args, "--trainer.max_epochs=4", "--ckpt_path=last",
                      "--data.device_data=false"])  # fmt: skip
    assert not forced.datamodule.data_path.in_memory


@pytest.mark.parametrize("device_data", [True, False])
def test_an_explicit_device_data_is_not_second_guessed(device_data, monkeypatch):
    monkeypatch.setattr("mtl.data.device.total_memory", lambda device: 1 if device_data else 2**40)
    small = [SyntheticSource("s", train=8, val=4, test=4)]
    dm = SyntheticDataModule(small, device_data=device_data)
    said: list[str] = []
    monkeypatch.setattr("mtl.data.datamodules.base.rank_zero_info", said.append)
    dm.setup("fit")
    assert dm.training_data_path().in_memory is device_data
    assert said[-1].endswith(f"--data.device_data={str(not device_data).lower()} to change it")


def test_mtl_bench_names_its_own_option_to_change_the_data_path(monkeypatch):
    said: list[str] = []
    monkeypatch.setattr("mtl.data.datamodules.base.rank_zero_info", said.append)
    dm = SyntheticDataModule([SyntheticSource("s", train=8, val=4, test=4)], device_data=True)
    dm.device_data_option = "--device_data"  # as mtl bench sets it
    dm.setup("fit")
    dm.training_data_path()
    assert said == [f"mtl: training data: {dm.data_path.describe()}; --device_data=false to "
                    "change it"]  # fmt: skip


def test_outside_a_trainer_the_dataloader_serves_finished_batches():
    """A DataModule iterated by hand gets the batch contract, not indices; a benchmark that
    wants the memory path names the device it would train on."""
    dm = SyntheticDataModule([SyntheticSource("s", train=16, val=4, test=4)], batch_size=8)
    dm.setup("fit")
    assert isinstance(next(iter(dm.train_dataloader())), dict)
    assert dm.data_path is None  # nothing decided for a later Trainer
    assert dm.training_data_path(torch.device("cpu")).in_memory
    indices = next(iter(dm.train_dataloader()))
    assert dm.on_after_batch_transfer(indices, 0)["image"].shape == (8, 1, 48, 48)


def test_a_checkpoint_older_than_the_choice_resumes_on_the_dataloader(in_tmp):
    """Runs saved before the in-memory default trained on the DataLoader: resumed, they stay."""
    args = [*tiny_fit_args(train=32, val=8, test=8), "--data.batch_size=16"]
    run_cli([*args, "--data.device_data=false"])
    ckpt = in_tmp / "runs" / "mtl" / "version_0" / "checkpoints" / "last.ckpt"
    state = torch.load(ckpt, weights_only=True)
    del state["SyntheticDataModule"]  # as a checkpoint of the earlier version has it
    torch.save(state, ckpt)
    resumed = run_cli([*args, "--trainer.max_epochs=2", "--ckpt_path=last"])
    assert not resumed.datamodule.data_path.in_memory
    assert "records no data path for SyntheticDataModule" in resumed.datamodule.data_path.reason


def test_a_cgroup_limit_below_the_machine_memory_is_the_budget(tmp_path, monkeypatch):
    """The process's own group or any above it (SLURM, systemd: not at the mount's top), in
    cgroup v2 or v1; "max" and a missing file are no limit."""
    groups = "4:memory:/job/step\n0::/slice/unit\n1:cpu:/elsewhere\n"
    files = cgroup_limit_files(groups, tmp_path)
    assert tmp_path / "memory" / "job" / "step" / "memory.limit_in_bytes" in files
    assert tmp_path / "memory" / "memory.limit_in_bytes" in files  # the v1 top
    assert tmp_path / "unified" / "slice" / "memory.max" in files  # hybrid layout
    assert tmp_path / "slice" / "unit" / "memory.max" in files
    assert not [f for f in files if "elsewhere" in str(f)]
    (tmp_path / "slice" / "unit").mkdir(parents=True)
    (tmp_path / "slice" / "unit" / "memory.max").write_text("max\n")
    (tmp_path / "memory" / "job").mkdir(parents=True)
    (tmp_path / "memory" / "job" / "memory.limit_in_bytes").write_text(f"{2**30}\n")
    assert container_limit(tmp_path / "slice" / "unit" / "memory.max") is None
    assert container_limit(tmp_path / "absent") is None
    proc = tmp_path / "cgroup"
    proc.write_text(groups)
    monkeypatch.setattr("mtl.data.device.CGROUP_ROOT", tmp_path)
    monkeypatch.setattr("mtl.data.device.PROC_CGROUP", proc)
    assert total_memory(torch.device("cpu")) == 2**30  # the job's parent; RAM is larger

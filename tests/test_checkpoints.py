"""Portable checkpoints: plain data only, loadable with ``weights_only=True``, and a model
rebuilt from the checkpoint alone, whether the CLI or a plain ``Trainer`` wrote it."""

from __future__ import annotations

import functools
from pathlib import Path

import lightning as L
import pytest
import torch

from mtl.cli import run_cli
from mtl.data import SyntheticDataModule, SyntheticSource
from mtl.losses import UncertaintyWeighting
from mtl.models import BKNet, HeadConfig
from mtl.models.hparams import to_plain
from mtl.training.module import MultiTaskModule
from mtl.training.optim import MomentumSGD

from .conftest import tiny_fit_args


def assert_portable(path: Path) -> MultiTaskModule:
    """Loads as plain data, rebuilds with no config, and predicts what the saved model did."""
    ckpt = torch.load(path, weights_only=True)
    model = MultiTaskModule.load_from_checkpoint(path)
    state = model.state_dict()
    for key, value in ckpt["state_dict"].items():
        assert torch.equal(state[key], value), key
    return model


def test_a_cli_checkpoint_is_plain_data_and_rebuilds_the_model(in_tmp):
    run_cli([*tiny_fit_args(train=32, val=8, test=8), "--model.weighting=UncertaintyWeighting"])
    model = assert_portable(in_tmp / "runs/mtl/version_0/checkpoints/last.ckpt")
    assert isinstance(model.weighting, UncertaintyWeighting)
    assert model.net.backbone.channels[0] == [8, 8]  # the narrow BKNet, not the default


def test_a_trainer_checkpoint_of_a_python_built_model_is_plain_data(tmp_path):
    data = SyntheticDataModule([SyntheticSource("a", ["smile", "age"], 32, 8, 8)], batch_size=16)
    model = MultiTaskModule(
        data.task_names,
        backbone=BKNet(channels=[[4], [8], [8], [8]], batch_norm=False),
        head=HeadConfig(hidden=[8]),
        weighting=functools.partial(UncertaintyWeighting, init=0.5),
        optimizer=functools.partial(MomentumSGD, lr=0.05),
    )
    trainer = L.Trainer(
        max_epochs=1,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, data)
    path = tmp_path / "checkpoints" / next((tmp_path / "checkpoints").iterdir()).name
    hparams = torch.load(path, weights_only=True)["hyper_parameters"]
    assert hparams["backbone"]["class_path"] == "mtl.models.backbones.bknet.BKNet"
    assert hparams["weighting"]["init_args"] == {"init": 0.5}
    rebuilt = assert_portable(path)
    assert rebuilt.net.backbone.channels == [[4], [8], [8], [8]]
    assert rebuilt.weighting.log_vars.tolist() == model.weighting.log_vars.tolist()
    assert rebuilt.optimizer_factory.keywords["lr"] == 0.05
    x = torch.rand(2, 1, 48, 48)
    model.eval(), rebuilt.eval()
    for task, out in model(x).items():
        torch.testing.assert_close(rebuilt(x)[task], out)


def test_what_cannot_be_plain_data_is_named():
    with pytest.raises(TypeError, match="weighting: a function cannot be saved"):
        MultiTaskModule(["smile"], weighting=lambda tasks: UncertaintyWeighting(tasks))
    with pytest.raises(TypeError, match="optimizer: a partial cannot be saved"):
        MultiTaskModule(
            ["smile"], optimizer=functools.partial(torch.optim.SGD, 0.1)
        )  # lr by position
    assert to_plain({"size": (1, 2), "path": Path("/x")}) == {"size": [1, 2], "path": "/x"}

"""MultiSourceDataModule: task union, per-source targets, balancing, per-source metrics."""

from __future__ import annotations

import pytest
import torch

from mtl.cli import run_cli
from mtl.data import (
    Fer2013DataModule,
    Genki4kDataModule,
    MultiSourceDataModule,
    UTKFaceDataModule,
)
from mtl.data.faces import FaceSettings
from mtl.tasks import IGNORE_INDEX
from tests import raw_fixtures as F

from .conftest import CONF_DIR
from .test_cli import localized


@pytest.fixture
def sources(tmp_path):
    F.write_genki(tmp_path / "genki")
    F.write_fer_folders(tmp_path / "fer")
    F.write_utkface(tmp_path / "utk")
    common = dict(cache_dir=tmp_path / "cache", prepare_workers=0)
    return [
        Genki4kDataModule(root=tmp_path / "genki", face=FaceSettings(detector="none"), **common),
        Fer2013DataModule(root=tmp_path / "fer", **common),
        UTKFaceDataModule(root=tmp_path / "utk", tasks=["age"], age_edges=[30], **common),
    ]


def test_tasks_are_the_union_and_each_source_fills_its_own_columns(sources):
    dm = MultiSourceDataModule(sources, age_edges=[20, 40])
    assert dm.task_names == ["smile", "emotion", "age"]  # UTK restricted to age: no gender
    assert dm.source_names == ["genki4k", "fer2013", "utkface"]
    dm.prepare_data()
    dm.setup("fit")
    utk = dm.train_sets[2][0]
    assert utk["source"].item() == 2
    assert utk["mask"].tolist() == [False, False, True]
    assert utk["targets"][:2].tolist() == [IGNORE_INDEX, IGNORE_INDEX]
    assert sources[2].tasks[0].age_edges == (20, 40)  # the run's age bins, not the source's
    fer = dm.train_sets[1][0]
    assert fer["mask"].tolist() == [False, True, False] and fer["source"].item() == 1
    batch = next(iter(dm.train_dataloader()))
    assert batch["targets"].shape == batch["mask"].shape == (len(batch["image"]), 3)
    assert torch.equal(batch["mask"], batch["targets"] != IGNORE_INDEX)


def test_equal_balance_duplicates_the_small_sources(sources):
    dm = MultiSourceDataModule(sources)
    dm.prepare_data()
    dm.setup("fit")
    sizes = [len(d) for d in dm.train_sets]
    assert dm.epoch_composition() == dict.fromkeys(dm.source_names, max(sizes))
    assert len(dm.train_dataloader().sampler) == 3 * max(sizes)
    proportional = MultiSourceDataModule(sources, balance="proportional")
    proportional.setup("fit")
    assert list(proportional.epoch_composition().values()) == sizes


def test_weights_need_one_per_source(sources):
    with pytest.raises(ValueError, match="3 weights"):
        MultiSourceDataModule(sources, balance="weights", weights=[1.0])


def test_metrics_are_reported_per_source_and_per_task(in_tmp):
    config = localized(CONF_DIR / "multisource_real.yaml", in_tmp)
    cli = run_cli(["fit", "--config", str(config), "--trainer.fast_dev_run=true"])
    logged = cli.trainer.logged_metrics
    for key in (
        "val/loss",
        "val/smile/acc",
        "val/genki4k/smile/acc",
        "val/fer2013/emotion/acc",
        "val/utkface/age/acc",
        "val/utkface/gender/f1",
    ):
        assert key in logged, key
    assert "val/genki4k/emotion/acc" not in logged  # a source reports only its own tasks

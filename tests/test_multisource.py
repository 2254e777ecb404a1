"""MultiSourceDataModule: task union and restriction, per-source targets, one seed for every
child, balancing, per-source metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtl.cli import run_cli
from mtl.data import (
    Fer2013DataModule,
    Genki4kDataModule,
    MultiSourceDataModule,
    SyntheticDataModule,
    SyntheticSource,
    UTKFaceDataModule,
)
from mtl.data.faces import FaceSettings
from mtl.errors import ConfigError
from tests import raw_fixtures as F

from .conftest import CONF_DIR
from .test_cli import localized


@pytest.fixture
def children(tmp_path):
    F.write_genki(tmp_path / "genki")
    F.write_fer_folders(tmp_path / "fer")
    F.write_utkface(tmp_path / "utk")
    common = dict(cache_dir=tmp_path / "cache", prepare_workers=0)
    return [
        Genki4kDataModule(root=tmp_path / "genki", face=FaceSettings(detector="none"), **common),
        Fer2013DataModule(root=tmp_path / "fer", **common),
        UTKFaceDataModule(root=tmp_path / "utk", tasks=["age"], age_edges=[30], **common),
    ]


def test_tasks_are_the_union_and_each_source_fills_its_own_columns(children):
    dm = MultiSourceDataModule(children, age_edges=[20, 40])
    assert dm.task_names == ["smile", "emotion", "age"]  # UTK restricted to age: no gender
    dm.prepare_data()
    dm.setup("fit")
    assert dm.source_names == ["genki4k", "fer2013", "utkface"]
    assert dm.source_tasks == {"genki4k": ["smile"], "fer2013": ["emotion"], "utkface": ["age"]}
    utk = dm.sources[2].train[0]
    assert utk["source"].item() == 2
    assert utk["mask"].tolist() == [False, False, True]
    assert torch.isnan(utk["targets"][:2]).all()
    assert children[2].tasks[0].age_edges == (20, 40)  # the run's age bins, not the child's
    fer = dm.sources[1].train[0]
    assert fer["mask"].tolist() == [False, True, False] and fer["source"].item() == 1
    batch = next(iter(dm.train_dataloader()))
    assert batch["targets"].shape == batch["mask"].shape == (len(batch["image"]), 3)
    assert torch.equal(batch["mask"], ~torch.isnan(batch["targets"]))


def test_sources_whose_faces_differ_are_refused_naming_each(tmp_path, children):
    face = FaceSettings(detector="none", size=32)
    small = Genki4kDataModule(
        root=children[0].root, cache_dir=tmp_path / "cache", prepare_workers=0, face=face
    )
    dm = MultiSourceDataModule([small, children[1]])
    dm.prepare_data()
    listed = r"Genki4kDataModule 1 x 32 x 32 \(grey\), Fer2013DataModule 1 x 48 x 48 \(grey\)"
    with pytest.raises(ConfigError, match=listed):
        dm.setup("fit")


def test_the_run_tasks_restrict_every_child(children):
    dm = MultiSourceDataModule(children, tasks=["emotion", "age"])
    assert dm.task_names == ["emotion", "age"]
    assert [type(c).__name__ for c in dm.datamodules] == ["Fer2013DataModule", "UTKFaceDataModule"]
    dm.prepare_data()
    dm.setup("fit")
    assert dm.source_tasks == {"fer2013": ["emotion"], "utkface": ["age"]}
    item = dm.sources[1].train[0]
    assert item["mask"].tolist() == [False, True] and item["source"].item() == 1


def test_a_child_restricted_to_tasks_brings_only_those(children):
    with pytest.raises(ValueError, match="no labels for task"):
        MultiSourceDataModule(children, tasks=["gender"])  # UTK was restricted to age
    utk = UTKFaceDataModule(root=children[2].root, cache_dir=children[2].cache_dir)
    dm = MultiSourceDataModule([children[0], utk], tasks=["smile", "age_years"])
    assert dm.task_names == ["smile", "age_years"] and utk.task_names == ["age_years"]
    years_only = UTKFaceDataModule(root=children[2].root, tasks=["gender", "age_years"])
    by_default = MultiSourceDataModule([children[0], years_only])  # the union, opt-in included
    assert by_default.task_names == ["smile", "gender", "age_years"]


def test_the_run_seed_reaches_every_child_and_changes_their_data(children):
    def synthetic(name: str, task: str) -> SyntheticDataModule:
        return SyntheticDataModule([SyntheticSource(name, [task], 30, 6, 6)], seed=123)

    def images(seed: int) -> np.ndarray:
        dm = MultiSourceDataModule([synthetic("a", "smile"), synthetic("b", "gender")], seed=seed)
        assert all(child.seed == seed for child in dm.datamodules)
        dm.setup("fit")
        return np.concatenate([s.train.dataset.images for s in dm.sources])

    np.testing.assert_array_equal(images(1), images(1))
    assert not np.array_equal(images(1), images(2))  # the children's own seed 123 is replaced
    real = MultiSourceDataModule(children, seed=5)
    assert [c.seed for c in real.datamodules] == [5, 5, 5]
    real.prepare_data()
    real.setup("fit")  # the real children split with the run's seed, saved under its name
    assert list((children[2].cache_dir / "utkface").rglob("splits/v2-seed5-k4.csv"))


def test_a_child_with_several_sources_brings_each_of_them(children):
    synthetic = SyntheticDataModule(
        [SyntheticSource("s_smile", ["smile"], 8, 4, 4), SyntheticSource("s_age", ["age"], 8, 4, 4)]
    )
    dm = MultiSourceDataModule([synthetic, children[1]])
    dm.prepare_data()
    dm.setup("fit")
    assert dm.source_names == ["s_smile", "s_age", "fer2013"]
    assert [dm.sources[i].train[0]["source"].item() for i in range(3)] == [0, 1, 2]


def test_equal_balance_duplicates_the_small_sources(children):
    dm = MultiSourceDataModule(children)
    dm.prepare_data()
    dm.setup("fit")
    sizes = [len(s.train) for s in dm.sources]
    assert dm.epoch_composition() == dict.fromkeys(dm.source_names, max(sizes))
    assert len(dm.train_dataloader().sampler) == 3 * max(sizes)
    proportional = MultiSourceDataModule(children, balance="proportional")
    proportional.setup("fit")
    assert list(proportional.epoch_composition().values()) == sizes


def test_weights_need_one_per_source(children):
    dm = MultiSourceDataModule(children, balance="weights", weights=[1.0])
    dm.prepare_data()
    with pytest.raises(ValueError, match="one weight per source"):
        dm.setup("fit")


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


def test_limited_validation_still_evaluates_every_source(in_tmp):
    """Sources are interleaved: limit_val_batches samples each source, it never skips one."""
    from .conftest import tiny_fit_args

    cli = run_cli([*tiny_fit_args(), "--trainer.limit_val_batches=1"])
    logged = cli.trainer.logged_metrics
    for task in ("smile", "emotion", "gender", "age"):
        assert torch.isfinite(logged[f"val/{task}/acc"]), task

import numpy as np
import pytest
import torch

from mtl.data import SyntheticDataModule, SyntheticSource
from mtl.data.synthetic_faces import render_faces, sample_attributes


def _dm(**kwargs):
    sources = [
        SyntheticSource("a", ["smile"], train=20, val=10, test=10),
        SyntheticSource("b", ["emotion"], train=20, val=10, test=10),
        SyntheticSource("c", ["gender", "age"], train=20, val=10, test=10),
    ]
    dm = SyntheticDataModule(sources=kwargs.pop("sources", sources), batch_size=8, **kwargs)
    dm.setup("fit")
    return dm


def test_rendering_is_deterministic_and_attribute_dependent():
    def draw(seed):
        rng = np.random.default_rng(seed)
        return render_faces(sample_attributes(16, rng), rng)

    a, b = draw(3), draw(3)
    assert a.dtype == np.uint8 and a.shape == (16, 48, 48)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, draw(4))


def test_batches_follow_the_contract_with_masks_per_source():
    dm = _dm()
    assert dm.task_names == ["smile", "emotion", "gender", "age"]
    batch = next(iter(dm.val_dataloader()))
    assert set(batch["source"].tolist()) == {0, 1, 2}  # sources interleaved
    assert batch["image"].shape == (8, 1, 48, 48) and batch["image"].dtype == torch.float32
    assert batch["image"].min() >= 0.0 and batch["image"].max() <= 1.0
    assert batch["targets"].dtype == torch.float32 and batch["mask"].dtype == torch.bool
    assert torch.equal(batch["mask"], ~torch.isnan(batch["targets"]))
    assert dm.source_names == ["a", "b", "c"]
    assert dm.source_tasks == {"a": ["smile"], "b": ["emotion"], "c": ["gender", "age"]}
    ds = dm.split("train")
    expected = {
        0: [True, False, False, False],
        1: [False, True, False, False],
        2: [False, False, True, True],
    }
    for i in range(len(ds)):
        item = ds[i]
        assert item["mask"].tolist() == expected[item["source"].item()]


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = _dm(seed=1), _dm(seed=1), _dm(seed=2)
    assert np.array_equal(a.sources[0].train.images, b.sources[0].train.images)
    assert not np.array_equal(a.sources[0].train.images, c.sources[0].train.images)
    assert not np.array_equal(a.sources[0].train.images, a.sources[0].val.images)


def test_every_class_of_every_task_occurs():
    dm = _dm(sources=[SyntheticSource("all", train=400, val=1, test=1)])
    targets = dm.sources[0].train.targets
    for j, task in enumerate(dm.tasks):
        assert set(targets[:, j].tolist()) == set(range(task.num_classes)), task.name


def test_single_task_run_drops_sources_without_its_labels():
    dm = _dm(tasks=["emotion"])
    assert dm.task_names == ["emotion"]
    assert dm.source_names == ["b"] and bool(dm.sources[0].train.mask.all())


def test_requesting_an_unlabelled_task_is_a_clear_error():
    with pytest.raises(ValueError, match="no labels for task"):
        SyntheticDataModule(sources=[SyntheticSource("a", ["smile"])], tasks=["gender"])
    with pytest.raises(ValueError, match="unknown task"):
        SyntheticDataModule(sources=[SyntheticSource("a", ["smiles"])])

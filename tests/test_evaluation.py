"""Evaluation as the papers do it: k-folds for every source, FER-2013's two test sets apart,
checkpoint ensembles, confusion matrices and the files a test leaves."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mtl.cli import run_cli
from mtl.data import Fer2013DataModule, MultiSourceDataModule, SyntheticDataModule
from mtl.data.datamodules.real import DATAMODULES
from mtl.data.datamodules.synthetic import SyntheticSource
from mtl.data.faces import FaceSettings
from mtl.data.prepare import prepare
from mtl.data.splits import SplitPlan, load_or_plan, plan_splits, strata
from mtl.models import BKNet, MultiTaskNet
from mtl.models.ensemble import EnsembleNet, average_outputs
from mtl.tasks import build_tasks
from mtl.training.evaluation import ConfusionMatrices
from mtl.training.metrics import StageMetrics
from tests import raw_fixtures as F
from tests.test_readers import CASES

from .conftest import tiny_fit_args
from .test_splits import genki_like, table


def check_folds(plan: SplitPlan, pool: np.ndarray, labels: np.ndarray | None, k: int) -> None:
    """Folds are disjoint and cover ``pool`` exactly; each fold holds every stratum's items
    to within one; held-out selections partition the pool into train and val."""
    assert set(np.flatnonzero(plan.fold >= 0)) == set(np.flatnonzero(pool))
    held = [plan.select(val_fold=f)["val"] for f in range(k) if (plan.fold == f).any()]
    covered = sum(h.astype(int) for h in held)  # each pool item in exactly one fold
    assert covered.tolist() == pool.astype(int).tolist()
    for f, val in enumerate(held):
        train = plan.select(val_fold=f)["train"]
        assert not (train & val).any() and ((train | val) == pool).all()
    if labels is not None:
        for stratum in np.unique(labels[pool]):
            per_fold = Counter(plan.fold[pool & (labels == stratum)].tolist())
            counts = [per_fold.get(f, 0) for f in range(k)]
            assert max(counts) - min(counts) <= 1, (stratum, counts)


@pytest.mark.parametrize("name", sorted(CASES))
def test_folds_of_every_reader_are_disjoint_covering_stratified_and_deterministic(name, tmp_path):
    write, make = CASES[name]
    write(tmp_path / "raw")
    reader = make(tmp_path / "raw")
    face = FaceSettings(detector="none")
    cache = prepare(reader, tmp_path / "c", face, workers=0, progress=False)
    tab = cache.table
    fractions = DATAMODULES[reader.name].split_fractions
    plan = load_or_plan(cache.path, tab, fractions, 2, seed=3)
    official_folds = bool((tab["fold"] >= 0).all())
    official_split = all(s in ("train", "val", "test") for s in tab["split"])
    pool = np.full(len(tab["id"]), True) if not official_split else plan.split == "train"
    check_folds(plan, pool, None if official_folds else strata(tab), 5 if official_folds else 2)
    again = plan_splits(tab, fractions, 2, seed=3)
    assert (again.fold == plan.fold).all() and (again.split == plan.split).all()
    saved = load_or_plan(cache.path, tab, fractions, 2, seed=3)  # read back from the file
    assert (saved.fold == plan.fold).all() and saved.official == plan.official


def test_folds_of_a_large_dataset_are_stratified_and_seeded():
    tab = genki_like()
    plan = plan_splits(tab, (0.75, 0.0, 0.25), 4, seed=0)
    check_folds(plan, np.full(4000, True), strata(tab), 4)
    assert [(plan.fold == f).sum() for f in range(4)] == [1000] * 4
    other = plan_splits(tab, (0.75, 0.0, 0.25), 4, seed=1)
    assert (other.fold != plan.fold).any()


def test_cross_validation_tests_on_the_held_out_fold_unless_the_test_split_is_official():
    genki = plan_splits(genki_like(), (0.75, 0.0, 0.25), 4, seed=0)
    masks = genki.select(val_fold=2)
    assert (masks["test"] == (genki.fold == 2)).all() and (masks["val"] == masks["test"]).all()
    assert masks["train"].sum() == 3000  # "k - 1 parts train, the remaining part tests"
    split = np.array(["train"] * 8 + ["val", "test"], dtype=object)
    fer = table(10, emotion=np.arange(10) % 7, split=split)
    plan = plan_splits(fer, (0.8, 0.1, 0.1), 2, seed=0)
    masks = plan.select(val_fold=0)
    assert list(np.flatnonzero(masks["test"])) == [9]  # the official test split stays
    assert not masks["val"][8:].any() and (masks["train"] | masks["val"]).sum() == 8
    with pytest.raises(ValueError, match="val_fold 7"):
        plan.select(val_fold=7)


def test_synthetic_folds_are_disjoint_covering_stratified_and_deterministic():
    sources = [SyntheticSource("s", ["smile", "gender"], train=80, val=10, test=10)]

    def split(fold: int, name: str):
        dm = SyntheticDataModule(sources=sources, k_folds=4, val_fold=fold, seed=5)
        dm.setup("fit")
        return getattr(dm.sources[0], name)

    whole = SyntheticDataModule(sources=sources, seed=5)
    whole.setup("fit")
    everything = whole.sources[0].train
    vals = [split(f, "val") for f in range(4)]
    assert sum(len(v) for v in vals) == len(everything) == 80
    seen = sorted(tuple(v.images[i].ravel()[:64]) for v in vals for i in range(len(v)))
    assert seen == sorted(tuple(everything.images[i].ravel()[:64]) for i in range(80))
    for f, val in enumerate(vals):
        assert len(split(f, "train")) + len(val) == 80
        assert torch.equal(split(f, "test").targets, whole.sources[0].test.targets)
    smiles = [int((v.targets[:, 0] == 1).sum()) for v in vals]  # 4 strata (smile x gender)
    assert max(smiles) - min(smiles) <= 2, smiles
    assert torch.equal(split(1, "val").targets, vals[1].targets)  # deterministic
    with pytest.raises(ValueError, match="val_fold"):
        SyntheticDataModule(sources=sources, k_folds=4, val_fold=4)


def test_fer_public_and_private_tests_are_reported_as_two_sources(tmp_path):
    F.write_fer_folders(tmp_path / "raw")
    dm = Fer2013DataModule(root=tmp_path / "raw", cache_dir=tmp_path / "c", batch_size=4)
    dm.prepare_data()
    dm.setup("test")
    assert list(dm.evaluation_sources("val")) == ["fer2013"]
    assert list(dm.evaluation_sources("test")) == ["fer2013_public", "fer2013_private"]
    public, private = dm.sources[0].test_parts.values()
    assert len(public) == len(dm.sources[0].val) and len(private) == len(dm.sources[0].test)
    batches = list(dm.test_dataloader())
    sources = torch.cat([b["source"] for b in batches])
    assert Counter(sources.tolist()) == {0: len(public), 1: len(private)}


def _net() -> MultiTaskNet:
    torch.manual_seed(0)
    return MultiTaskNet(build_tasks(["smile", "emotion", "age_years"]), BKNet(), None, None).eval()


def test_an_ensemble_of_identical_checkpoints_equals_the_model(tmp_path):
    net = _net()
    files = []
    for k in range(3):
        files.append(tmp_path / f"epoch{k:03d}.pt")
        torch.save({"epoch": k, "net": net.state_dict()}, files[-1])
    ensemble = EnsembleNet(net, files, build_tasks(["smile", "emotion", "age_years"]))
    image = torch.rand(5, 1, 48, 48)
    with torch.no_grad():
        single = net(image)
    averaged = ensemble(image)
    torch.testing.assert_close(averaged["smile"], single["smile"].softmax(-1))
    torch.testing.assert_close(averaged["emotion"], single["emotion"].softmax(-1))
    torch.testing.assert_close(averaged["age_years"], single["age_years"])


def test_ensemble_averages_probabilities_not_scores():
    tasks = build_tasks(["smile"])
    scores = [torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[0.0, 1.0]])]
    out = average_outputs([{"smile": s} for s in scores], tasks)["smile"]
    torch.testing.assert_close(out, torch.stack([s.softmax(-1) for s in scores]).mean(0))
    assert torch.stack(scores).mean(0).argmax().item() == 0  # the mean score says class 0 …
    assert out.argmax().item() == 1  # … the mean probability (the papers' ensemble) class 1


def test_confusion_matrix_matches_hand_counts():
    """The callback's matrices are the module's metric state (what accuracy and F1 read)."""
    tasks = build_tasks(["smile", "gender"])
    metrics = StageMetrics(tasks, "test", {"a": ["smile"], "b": ["smile", "gender"]})
    module = SimpleNamespace(tasks=tasks, stage_metrics=lambda stage: metrics)
    trainer = SimpleNamespace(loggers=[], sanity_checking=False, global_step=0)
    callback = ConfusionMatrices()
    callback.setup(trainer, module, "test")
    # smile: actual  1 1 0 0 1 (rows 0-4), predicted 1 0 0 1 1; row 4 unlabelled for gender
    smile_scores = torch.tensor([[0, 1], [1, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.float)
    gender_scores = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1], [1, 0]], dtype=torch.float)
    batch = {
        "targets": torch.tensor([[1, 0], [1, 1], [0, 1], [0, 0], [1, 0]], dtype=torch.float),
        "mask": torch.tensor([[1, 0], [1, 1], [1, 1], [1, 1], [1, 0]], dtype=torch.bool),
        "source": torch.tensor([0, 1, 1, 1, 0]),
    }
    metrics.update({"smile": smile_scores, "gender": gender_scores}, batch)
    callback._log("test", trainer, module)
    results = callback.results["test"]
    assert results[("", "smile")].tolist() == [[1, 1], [1, 2]]  # rows actual, columns predicted
    assert results[("a", "smile")].tolist() == [[0, 0], [0, 2]]
    assert results[("b", "smile")].tolist() == [[1, 1], [1, 0]]
    assert results[("", "gender")].tolist() == [[0, 1], [1, 1]]  # rows 1-3 only
    assert ("a", "gender") not in results  # source a does not label gender
    accuracy = metrics.compute()["test/smile/acc"]
    assert accuracy.item() == pytest.approx(3 / 5)  # the same state: its diagonal over its sum


def test_a_multi_source_fold_out_of_range_is_refused():
    with pytest.raises(ValueError, match="val_fold must be in 0..3"):
        MultiSourceDataModule(datamodules=[SyntheticDataModule()], k_folds=4, val_fold=9)


def test_a_fast_dev_run_leaves_no_report_behind(in_tmp):
    run_cli([*tiny_fit_args(), "--trainer.fast_dev_run=true", "--test_after_fit=true"])
    assert not list(in_tmp.rglob("run.json")) and not (in_tmp / "test").exists()


def test_how_often_a_run_validates_leaves_its_training_unchanged(tmp_path, monkeypatch):
    """Validation draws no random numbers and, without ``precise_bn`` or a scheduler acting on
    it, touches no weight or statistic, so ``mtl report`` pairs a run validated every epoch with
    one validated every few that validates its last epoch too: the same final state bit for
    bit."""
    states = {}
    for every in (1, 2):
        folder = tmp_path / str(every)
        folder.mkdir()
        monkeypatch.chdir(folder)
        args = [*tiny_fit_args(train=32, val=8, test=8), "--data.batch_size=16",
                "--trainer.max_epochs=3", f"--trainer.check_val_every_n_epoch={every}"]  # fmt: skip
        run_cli(args)
        last = folder / "runs" / "mtl" / "version_0" / "checkpoints" / "last.ckpt"
        states[every] = torch.load(last, weights_only=True)["state_dict"]
    torch.testing.assert_close(states[1], states[2], rtol=0, atol=0)

"""Splits: stratified, seeded, official where they exist; balanced k-folds saved with the cache."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from mtl.data import (
    AdienceDataModule,
    Fer2013DataModule,
    Genki4kDataModule,
    MultiSourceDataModule,
    SyntheticDataModule,
)
from mtl.data import splits as S
from mtl.data.datasets import targets_for
from mtl.data.faces import FaceSettings
from mtl.data.prepare import prepare
from mtl.data.readers import WikiReader
from mtl.data.splits import SplitPlan, plan_splits
from mtl.tasks import build_tasks
from tests import raw_fixtures as F


def table(n: int, **columns) -> dict[str, np.ndarray]:
    base = {
        "id": np.array([f"i{k}" for k in range(n)], dtype=object),
        "split": np.array([""] * n, dtype=object),
        "fold": np.full(n, -1),
        "smile": np.full(n, -1),
        "emotion": np.full(n, -1),
        "gender": np.full(n, -1),
        "age": np.full(n, np.nan),
    }
    base.update(columns)
    return base


def genki_like() -> dict[str, np.ndarray]:
    """4,000 items sorted by class like GENKI-4K's labels.txt: 2,162 smiles first."""
    return table(4000, smile=np.array([1] * 2162 + [0] * 1838))


def test_genki_split_is_3000_1000_and_stratified():
    t = genki_like()
    split = S.stratified_split(t, (0.75, 0.0, 0.25), seed=0)
    assert (split == "test").sum() == 1000 and (split == "train").sum() == 3000
    smile_share = t["smile"][split == "test"].mean()
    assert abs(smile_share - 2162 / 4000) < 1e-3  # not the sorted file's first/last thousand


def test_split_is_seeded():
    t = genki_like()
    a, b = (S.stratified_split(t, (0.8, 0.1, 0.1), seed=0) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    assert (S.stratified_split(t, (0.8, 0.1, 0.1), seed=1) != a).any()


def test_folds_are_balanced_and_stratified():
    t = genki_like()
    pool = np.arange(3000)
    folds = S.assign_folds(t, pool, k=4, seed=0)
    assert (folds[3000:] == -1).all()
    sizes = np.bincount(folds[pool])
    assert sizes.max() - sizes.min() <= 1
    smiles = [t["smile"][folds == k].sum() for k in range(4)]
    assert max(smiles) - min(smiles) <= 1


def test_allocate_is_exact():
    assert S.allocate([5, 5, 1], 4) == [2, 2, 0]
    assert sum(S.allocate([2162, 1838], 1000)) == 1000


@pytest.mark.parametrize("bad", [(0.5, 0.5), (0.9, 0.2, 0.1), (1.1, -0.1, 0.0)])
def test_bad_fractions_are_rejected(bad):
    with pytest.raises(ValueError, match="fractions"):
        S.stratified_split(genki_like(), bad, seed=0)


def test_official_splits_and_folds_are_kept():
    fer = table(
        3, emotion=np.array([0, 1, 2]), split=np.array(["train", "val", "test"], dtype=object)
    )
    plan = plan_splits(fer, (0.8, 0.1, 0.1), k_folds=2, seed=0)
    assert list(plan.split) == ["train", "val", "test"]
    adience = table(4, gender=np.array([0, 1, 0, 1]), fold=np.array([0, 1, 2, 4]))
    plan = plan_splits(adience, (0.8, 0.1, 0.1), k_folds=4, seed=0)
    assert list(plan.fold) == [0, 1, 2, 4] and set(plan.split) == {"train"}


def test_fold_options_select_val_and_test(tmp_path):
    dm = AdienceDataModule(root=tmp_path, test_fold=2, val_fold=1)
    plan = SplitPlan(np.full(5, "train", dtype=object), np.array([0, 1, 2, 3, 4]))
    masks = dm.select(plan)
    assert list(np.flatnonzero(masks["test"])) == [2]
    assert list(np.flatnonzero(masks["val"])) == [1]
    assert list(np.flatnonzero(masks["train"])) == [0, 3, 4]
    assert dm.tested_on_words(plan) == "fold 2 of 5"  # the plan's folds, not k_folds (4)
    assert AdienceDataModule(root=tmp_path).tested_on_words(plan) == "fold 4 of 5"  # its own
    seeded = SplitPlan(np.array(["train", "val", "test"], dtype=object), np.array([0, 1, -1]))
    assert Genki4kDataModule(root=tmp_path, seed=3).tested_on_words(seeded) == (
        "a seeded test split (data.seed 3)"
    )


def test_age_years_map_to_configured_groups():
    t = table(4, age=np.array([15.0, 16.0, 60.9, np.nan]), gender=np.array([1, 0, -1, 1]))
    targets = targets_for(t, build_tasks(["gender", "age", "age_years"], age_edges=[16, 61]))
    nan = float("nan")
    expected = [[1, 0, 15.0], [0, 1, 16.0], [nan, 1, 60.9], [1, nan, nan]]
    np.testing.assert_allclose(targets, np.array(expected, dtype=np.float32))


def test_datamodule_saves_its_split_with_the_cache_and_reuses_it(tmp_path):
    F.write_genki(tmp_path / "raw")
    kwargs = dict(
        root=tmp_path / "raw", cache_dir=tmp_path / "cache", face=FaceSettings(detector="none")
    )
    dm = Genki4kDataModule(**kwargs, prepare_workers=0)
    dm.prepare_data()
    dm.setup("fit")
    saved = list((tmp_path / "cache").rglob("splits/v2-seed0-k4.csv"))
    assert len(saved) == 1
    assert dm.sources[0].train.transform is not None and dm.sources[0].val.transform is None
    train, test = dm.sources[0].train, dm.sources[0].test
    total = len(train) + len(test)
    assert total == 4  # the fixture's four good faces
    again = Genki4kDataModule(**kwargs)
    again.setup("fit")
    assert len(again.sources[0].train) == len(train)


def test_setup_without_a_cache_says_how_to_make_one(tmp_path):
    F.write_genki(tmp_path / "raw")
    dm = Genki4kDataModule(root=tmp_path / "raw", cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="mtl prepare genki4k"):
        dm.setup("fit")


def _write_many(path, rows: int, times: int) -> None:
    from mtl.data.cache import write_csv

    for _ in range(times):
        write_csv(path, ("id", "split", "fold"), ((f"i{k}", "train", k % 4) for k in range(rows)))


def test_ranks_writing_one_split_file_at_once_never_leave_a_partial_file(tmp_path):
    """Every DDP rank may save the (identical) split plan at the same moment: each writes its
    own temporary file and renames it, so a reader only ever sees a whole file."""
    import multiprocessing as mp

    path, rows = tmp_path / "seed0-k4.csv", 5000
    writers = [
        mp.get_context("fork").Process(target=_write_many, args=(path, rows, 30)) for _ in range(2)
    ]
    for w in writers:
        w.start()
    seen = 0
    while any(w.is_alive() for w in writers):
        if path.is_file():
            saved = S.read_split_file(path)
            assert saved is not None and len(saved[0]) == rows
            seen += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert seen > 0 and not list(tmp_path.glob("*.tmp"))


def celebrities(seed: int = 0) -> dict[str, np.ndarray]:
    """1,200 photos of 150 people (1 to 30 photos each, as IMDB-WIKI's long tail), each
    person's gender fixed and their ages spread over a career."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 31, size=150)
    counts = np.round(counts * 1200 / counts.sum()).astype(int)
    people = np.repeat(np.arange(len(counts)), counts)
    n = len(people)
    genders = rng.integers(0, 2, size=len(counts))[people]
    ages = rng.uniform(18, 70, size=n).round()
    names = np.array([f"person {p}" for p in people], dtype=object)
    return table(n, group=names, gender=genders, age=ages)


def sides(parts: np.ndarray, names: np.ndarray) -> dict[str, set]:
    """Each person's set of parts (splits or folds)."""
    out: dict[str, set] = {}
    for part, name in zip(parts, names, strict=True):
        out.setdefault(name, set()).add(part)
    return out


def test_a_person_is_on_one_side_of_the_split_and_of_the_folds():
    t = celebrities()
    n = len(t["id"])
    split = S.stratified_split(t, (0.8, 0.1, 0.1), seed=0)
    assert all(len(s) == 1 for s in sides(split, t["group"]).values())
    shares = {name: (split == name).mean() for name in S.SPLITS}
    assert abs(shares["train"] - 0.8) < 0.03 and abs(shares["test"] - 0.1) < 0.03
    assert abs(t["gender"][split == "test"].mean() - t["gender"].mean()) < 0.1  # stratified
    folds = S.assign_folds(t, np.arange(n), k=4, seed=0)
    assert all(len(f) == 1 for f in sides(folds, t["group"]).values())
    assert np.bincount(folds).min() > 0.8 * n / 4
    # the plan (and the cache's split file) is seeded like the ungrouped one
    np.testing.assert_array_equal(split, S.stratified_split(t, (0.8, 0.1, 0.1), seed=0))
    assert (S.stratified_split(t, (0.8, 0.1, 0.1), seed=1) != split).any()


def test_many_small_strata_still_fill_every_split_and_fold():
    # 20 age strata of 3 people with one photo each (IMDB-WIKI's rare ages look like this)
    ages = np.repeat(np.arange(20) * 5.0 + 1, 3)
    names = np.array([f"p{i}" for i in range(60)], dtype=object)
    t = table(60, group=names, age=ages)
    folds = S.assign_folds(t, np.arange(60), k=5, seed=0)
    assert sorted(np.bincount(folds, minlength=5)) == [12] * 5
    split = S.stratified_split(t, (0.8, 0.1, 0.1), seed=0)
    assert [(split == name).sum() for name in S.SPLITS] == [48, 6, 6]


def test_without_groups_the_split_is_what_it_was():
    t = genki_like()
    before = S.stratified_split(t, (0.8, 0.1, 0.1), seed=0)
    t["group"] = np.full(4000, "", dtype=object)  # a cache with an empty group column
    np.testing.assert_array_equal(S.stratified_split(t, (0.8, 0.1, 0.1), seed=0), before)


def test_a_prepared_wiki_cache_records_who_is_shown_and_which_field_said_so(tmp_path):
    F.write_imdb_wiki(tmp_path / "raw", "wiki")
    for extra in ("01/a_twin.jpg", "01/a_older.jpg"):  # two more photos of Person 0
        F.grey_jpeg(tmp_path / "raw" / extra, 90, (60, 60))
    mat = tmp_path / "raw" / "wiki.mat"
    struct = scipy.io.loadmat(mat, simplify_cells=True)["wiki"]
    first = {k: np.atleast_1d(v)[:1] for k, v in struct.items() if k != "face_location"}
    for k, v in first.items():
        struct[k] = np.concatenate([v, v, np.atleast_1d(struct[k])])
    struct["full_path"][:2] = ["01/a_twin.jpg", "01/a_older.jpg"]
    struct["face_location"] = [[10.0, 10.0, 50.0, 50.0]] * len(struct["full_path"])
    scipy.io.savemat(mat, {"wiki": struct})
    cache = prepare(WikiReader(tmp_path / "raw"), tmp_path / "cache",
                    FaceSettings(detector="given"), workers=0, progress=False)  # fmt: skip
    assert cache.manifest["groups"] == {"field": "name", "kept": 3}
    people = dict(zip(cache.table["id"], cache.table["group"], strict=True))
    assert people["01/a_twin.jpg"] == people["01/a_good.jpg"] == "Person 0"
    plan = S.load_or_plan(cache.path, cache.table, (0.34, 0.33, 0.33), 2, seed=0)
    assert all(len(s) == 1 for s in sides(plan.split, cache.table["group"]).values())
    assert all(len(s) == 1 for s in sides(plan.fold, cache.table["group"]).values())


def test_a_mix_can_test_on_one_fold_and_validate_on_another(tmp_path):
    """The nested protocol: a schedule chosen on val_fold 1 never sees test_fold 0, in every
    source, the official test split of FER-2013 included."""
    F.write_genki(tmp_path / "genki")
    F.write_fer_folders(tmp_path / "fer")

    def sources() -> list:
        return [
            Genki4kDataModule(root=tmp_path / "genki", cache_dir=tmp_path / "cache",
                              face=FaceSettings(detector="none"), prepare_workers=0),
            Fer2013DataModule(root=tmp_path / "fer", cache_dir=tmp_path / "cache"),
        ]  # fmt: skip

    children = sources()
    dm = MultiSourceDataModule(datamodules=children, k_folds=4, val_fold=1, test_fold=0)
    assert [c.test_fold for c in dm.datamodules] == [0, 0]
    dm.prepare_data()
    for child in dm.datamodules:
        cache = child.open_cache()
        plan = S.load_or_plan(cache.path, cache.table, child.split_fractions, 4, child.seed)
        masks = child.select(plan)
        assert set(plan.fold[masks["test"]]) == {0} and set(plan.fold[masks["val"]]) == {1}
        assert set(plan.fold[masks["train"]]) == {2, 3}
    dm.setup("test")  # run.json and the model card say which faces each test held
    assert dm.tested_on() == {"genki4k": "fold 0 of 4", "fer2013": "fold 0 of 4"}
    cv = MultiSourceDataModule(datamodules=sources(), k_folds=4, val_fold=1)
    cv.setup("test")  # mtl cv's folds: GENKI-4K tests on the held-out fold, FER-2013 officially
    assert cv.tested_on() == {"genki4k": "fold 1 of 4, held out",
                              "fer2013": "its official test split (public, private)"}  # fmt: skip
    # a mix that sets no test_fold leaves each child's own (Adience tests on its fold 4)
    adience = AdienceDataModule(root=tmp_path / "adience")
    MultiSourceDataModule(datamodules=[adience], val_fold=1)
    assert adience.test_fold == 4
    with pytest.raises(ValueError, match="both 1"):
        MultiSourceDataModule(datamodules=children, val_fold=1, test_fold=1)
    with pytest.raises(ValueError, match="SyntheticDataModule cannot test on a fold"):
        MultiSourceDataModule(datamodules=[SyntheticDataModule()], test_fold=0)

"""A DataModule over one real dataset: prepare its face cache once, split it, serve it.

``prepare_data`` (rank 0 only under DDP) runs ``mtl prepare`` for the source when its cache is
missing; ``setup`` loads the cache, resolves splits and builds :class:`FaceArrayDataset`s with
targets for the run's tasks (age in years → the configured age groups).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
from lightning.pytorch.utilities import rank_zero_info

from mtl.data import cache as C
from mtl.data import splits as S
from mtl.data.datamodule import FaceDataModule
from mtl.data.dataset import FaceArrayDataset
from mtl.data.faces import FaceSettings
from mtl.data.prepare import locate, prepare
from mtl.data.sources.base import RawSource
from mtl.data.transforms import Augment, Augmentation
from mtl.tasks import IGNORE_INDEX, Task


@dataclass
class SplitPlan:
    """Which items are train / val / test, and every item's fold (-1 outside the k-fold pool)."""

    split: np.ndarray  # N, "train" | "val" | "test"
    fold: np.ndarray  # N, int


def plan_splits(
    table: dict[str, np.ndarray], fractions: tuple[float, float, float], k_folds: int, seed: int
) -> SplitPlan:
    """Official splits/folds where the source has them, seeded stratified ones otherwise."""
    n = len(table["id"])
    official_split = n > 0 and all(s in S.SPLITS for s in table["split"])
    official_folds = n > 0 and bool((table["fold"] >= 0).all())
    if official_folds:
        return SplitPlan(np.full(n, "train", dtype=object), table["fold"].copy())
    split = table["split"].copy() if official_split else S.stratified_split(table, fractions, seed)
    fold = S.assign_folds(table, np.flatnonzero(split == "train"), k_folds, seed)
    return SplitPlan(split, fold)


def targets_for(table: dict[str, np.ndarray], tasks: tuple[Task, ...]) -> np.ndarray:
    """N x T targets in the run's task order; IGNORE_INDEX where an item has no label."""
    columns = []
    for task in tasks:
        if task.age_edges is not None:
            years = table["age"]
            groups = np.searchsorted(task.age_edges, np.nan_to_num(years), side="right")
            columns.append(np.where(np.isnan(years), IGNORE_INDEX, groups))
        else:
            columns.append(table[task.name])
    return np.stack(columns, axis=1).astype(np.int64)  # N x T


class SourceDataModule(FaceDataModule):
    """Base of the per-dataset DataModules; subclasses name their :class:`RawSource`."""

    source_class: ClassVar[type[RawSource]]
    split_fractions: ClassVar[tuple[float, float, float]] = (0.8, 0.1, 0.1)

    def __init__(
        self,
        root: str | Path,
        cache_dir: str | Path = C.DEFAULT_CACHE_DIR,
        face: FaceSettings = FaceSettings(),
        augmentation: Augmentation | None = Augmentation(),
        k_folds: int = 4,
        val_fold: int | None = None,
        test_fold: int | None = None,
        prepare_device: str = "auto",
        prepare_workers: int = 2,
        **kwargs,
    ) -> None:
        """
        Args:
            root: the dataset folder exactly as distributed.
            cache_dir: where prepared faces are cached (env ``MTL_CACHE``, else
                ``~/.cache/mtl/faces``); one sub-folder per source and content key.
            face: detection / crop / size settings (part of the cache key).
            augmentation: training augmentation; ``null`` turns it off.
            k_folds: folds assigned over the training pool for cross-validation.
            val_fold: validate on this fold of the pool (trained on the others) instead of
                the official / seeded validation split.
            test_fold: test on this fold (Adience's protocol); default the test split.
            prepare_device: where MTCNN runs when the cache must be built.
            prepare_workers: image-decoding processes when the cache must be built.
            **kwargs: :class:`~mtl.data.datamodule.FaceDataModule` options (tasks, batch size …).
        """
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.cache_dir = Path(cache_dir).expanduser()
        self.face = face
        self.augmentation = augmentation
        self.k_folds = k_folds
        self.val_fold = val_fold
        self.test_fold = test_fold
        self.prepare_device = prepare_device
        self.prepare_workers = prepare_workers
        self.cache: C.FaceCache | None = None

    def labelled_tasks(self) -> list[str]:
        return list(self.source_class.tasks)

    @property
    def source_name(self) -> str:
        return self.source_class.name

    def make_source(self) -> RawSource:
        """The raw source; subclasses with options pass them here."""
        return self.source_class(root=self.root)

    def prepare_data(self) -> None:
        """Build the cache if missing. The loaded cache is kept, so ``setup`` in the same
        process neither rescans the raw data nor reloads it (other DDP ranks open it)."""
        self.cache = prepare(
            self.make_source(),
            self.cache_dir,
            self.face,
            device=self.prepare_device,
            workers=self.prepare_workers,
        )

    def open_cache(self) -> C.FaceCache:
        """The cache the current raw data and settings map to; says how to build it if absent."""
        source = self.make_source()
        path, _, _ = locate(source, self.cache_dir, self.face)
        try:
            return C.FaceCache.open(path)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{err}; build it with prepare_data() or "
                f"`mtl prepare {source.name} --root {self.root} --out {self.cache_dir}`"
            ) from None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.cache is None:
            self.cache = self.open_cache()
        plan = self.load_or_plan_splits(self.cache.path)
        masks = self.select(plan)
        targets = targets_for(self.cache.table, self.tasks)
        labelled = (targets != IGNORE_INDEX).any(axis=1)  # items with a label for this run
        if not labelled.all():
            rank_zero_info(
                f"{self.source_class.name}: {int((~labelled).sum())} faces have no label for "
                f"tasks {self.task_names} and are left out"
            )
            masks = {k: m & labelled for k, m in masks.items()}
        size = self.cache.images.shape[1]
        train_tf = Augment(self.augmentation, size, self.seed) if self.augmentation else None
        for name, tf in (("train", train_tf), ("val", None), ("test", None)):
            idx = np.flatnonzero(masks[name])
            years = self.cache.table["age"][idx] if "age" in self.task_names else None
            dataset = FaceArrayDataset(
                self.cache.images[idx], targets[idx], transform=tf, age_years=years
            )
            setattr(self, f"{name}_set", dataset)
        counts = ", ".join(f"{k} {int(m.sum())}" for k, m in masks.items())
        rank_zero_info(f"{self.source_class.name}: {counts} faces")

    def select(self, plan: SplitPlan) -> dict[str, np.ndarray]:
        """Boolean masks of the train / val / test items under the fold options."""
        test = plan.fold == self.test_fold if self.test_fold is not None else plan.split == "test"
        val = plan.fold == self.val_fold if self.val_fold is not None else plan.split == "val"
        val &= ~test
        train = (plan.split == "train") & ~test & ~val
        if not val.any():
            rank_zero_info(
                f"{self.source_class.name} has no validation split: validating on the test "
                "split (as the papers report); set val_fold for a held-out fold"
            )
            val = test
        return {"train": train, "val": val, "test": test}

    def load_or_plan_splits(self, path: Path) -> SplitPlan:
        """The split saved with the cache for this seed and k, computed and saved if new."""
        assert self.cache is not None
        file = path / "splits" / f"seed{self.seed}-k{self.k_folds}.csv"
        ids = self.cache.table["id"]
        if file.is_file():
            saved = S.read_split_file(file)
            if saved is not None and np.array_equal(saved[0], ids):
                return SplitPlan(saved[1], saved[2])
        plan = plan_splits(self.cache.table, self.split_fractions, self.k_folds, self.seed)
        file.parent.mkdir(exist_ok=True)
        C.write_csv(file, ("id", "split", "fold"), zip(ids, plan.split, plan.fold, strict=True))
        return plan

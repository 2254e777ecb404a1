"""A DataModule over one real dataset: prepare its face cache once, split it, serve it.

``prepare_data`` (rank 0 only under DDP) runs ``mtl prepare`` for the dataset when its cache is
missing or damaged; ``setup`` opens the verified cache, resolves splits and builds
:class:`FaceArrayDataset`s with targets for the run's tasks (age in years → the configured age
groups, or the years themselves for ``age_years``). The dataset is the run's one source.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from lightning.pytorch.utilities import rank_zero_info

from mtl.data import cache as C
from mtl.data import splits as S
from mtl.data.datamodules.base import FaceDataModule, SourceData
from mtl.data.datasets import FaceArrayDataset, attributes_for, targets_for
from mtl.data.faces import FaceSettings
from mtl.data.prepare import locate, prepare
from mtl.data.readers.base import Reader
from mtl.data.transforms import Augment, Augmentation
from mtl.errors import UserError
from mtl.tasks import TASK_NAMES, make_task


class MissingCache(UserError, FileNotFoundError):
    """No complete face cache for the dataset and settings; says how to build one."""


class CachedDataModule(FaceDataModule):
    """Base of the per-dataset DataModules; subclasses name their :class:`Reader`."""

    reader_class: ClassVar[type[Reader]]
    split_fractions: ClassVar[tuple[float, float, float]] = (0.8, 0.1, 0.1)
    test_parts: ClassVar[dict[str, str]] = {}
    """Official splits a test reports separately, by part name (FER-2013: public, private)."""

    def __init__(
        self,
        root: str | Path | None = None,
        cache_dir: str | Path = C.DEFAULT_CACHE_DIR,
        cache_path: str | Path | None = None,
        face: FaceSettings = FaceSettings(),
        augmentation: Augmentation | None = Augmentation(),
        k_folds: int = 4,
        val_fold: int | None = None,
        test_fold: int | None = None,
        prepare_device: str = "auto",
        prepare_workers: int = 2,
        **kwargs: Any,
    ) -> None:
        """
        Args:
            root: the dataset folder exactly as distributed.
            cache_dir: where prepared faces are cached (env ``MTL_CACHE``, else
                ``~/.cache/mtl/faces``); one sub-folder per dataset and content key.
            cache_path: train from this prepared cache folder (``CACHE_DIR/<dataset>/<key>``)
                without the raw dataset, e.g. on a GPU machine that was given only the cache;
                used instead of ``root``.
            face: detection / crop / size settings (part of the cache key).
            augmentation: training augmentation; ``null`` turns it off.
            k_folds: folds assigned over the training pool for cross-validation.
            val_fold: cross-validation: train on the other folds of the k-fold pool and
                validate on this one; a dataset without an official test split also tests on it
                (the papers' k-fold; see :mod:`mtl.data.splits`).
            test_fold: test on this fold (Adience's protocol); default the test split.
            prepare_device: where MTCNN runs when the cache must be built.
            prepare_workers: image-decoding processes when the cache must be built.
            **kwargs: :class:`~mtl.data.datamodules.base.FaceDataModule` options (tasks,
                batch size, seed …).
        """
        super().__init__(**kwargs)
        if root is None and cache_path is None:
            raise ValueError(f"{type(self).__name__} needs root (the dataset) or cache_path")
        self.root = None if root is None else Path(root).expanduser()
        self.cache_path = None if cache_path is None else Path(cache_path).expanduser()
        self.cache_dir = Path(cache_dir).expanduser()
        self.face = face
        self.augmentation = augmentation
        self.k_folds = k_folds
        self.val_fold = val_fold
        self.test_fold = test_fold
        self.prepare_device = prepare_device
        self.prepare_workers = prepare_workers
        self.cache: C.FaceCache | None = None

    @property
    def dataset_name(self) -> str:
        return self.reader_class.name

    def labelled_tasks(self) -> list[str]:
        columns = self.reader_class.columns
        return [t for t in TASK_NAMES if make_task(t).column in columns]

    def face_settings(self) -> FaceSettings:
        if self.cache is not None:  # what the faces were really prepared with
            return FaceSettings(**self.cache.manifest["face"])
        if self.face.detector == "auto":
            return dataclasses.replace(self.face, detector=self.reader_class.default_detector)
        return self.face

    def make_reader(self) -> Reader:
        """The dataset's reader; subclasses with reader options pass them here."""
        return self.reader_class(root=self.root)

    def prepare_data(self) -> None:
        """Build the cache if missing (or damaged). The loaded cache is kept, so ``setup`` in the
        same process neither rescans the raw data nor reloads it (other DDP ranks open it)."""
        if self.cache_path is not None:
            self.cache = self.open_cache()
            return
        self.cache = prepare(
            self.make_reader(),
            self.cache_dir,
            self.face,
            device=self.prepare_device,
            workers=self.prepare_workers,
        )

    def open_cache(self) -> C.FaceCache:
        """The verified cache the current raw data and settings map to; says how to build it."""
        if self.cache_path is not None:
            return self.open_cache_path(self.cache_path)
        reader = self.make_reader()
        path, _, _ = locate(reader, self.cache_dir, self.face)
        fix = f"`mtl prepare {reader.name} --root {self.root} --out {self.cache_dir}`"
        try:
            return C.FaceCache.open(path)
        except C.DamagedCache as err:
            raise C.DamagedCache(f"{err} with {fix} (or prepare_data())") from None
        except FileNotFoundError as err:
            raise MissingCache(f"{err}; build it with prepare_data() or {fix}") from None

    def open_cache_path(self, path: Path) -> C.FaceCache:
        """The cache folder given as ``cache_path``, checked to be this dataset's."""
        try:
            cache = C.FaceCache.open(path)
        except FileNotFoundError as err:
            raise MissingCache(f"cache_path: {err}") from None
        name = cache.manifest["dataset"]["name"]
        if name != self.dataset_name:
            raise ValueError(f"cache_path {path} holds {name} faces, not {self.dataset_name}")
        return cache

    def load_sources(self, stage: str | None) -> list[SourceData]:
        if self.cache is None:
            self.cache = self.open_cache()
        table = self.cache.table
        plan = S.load_or_plan(self.cache.path, table, self.split_fractions, self.k_folds, self.seed)
        masks = self.select(plan)
        targets = targets_for(table, self.tasks)  # N x T, NaN where unlabelled
        attributes = attributes_for(table, len(targets))  # N x A, -1 where unknown
        labelled = ~np.isnan(targets).all(axis=1)  # items with a label for this run
        if not labelled.all():
            rank_zero_info(
                f"{self.dataset_name}: {int((~labelled).sum())} faces have no label for "
                f"tasks {self.task_names} and are left out"
            )
            masks = {k: m & labelled for k, m in masks.items()}
        size = self.cache.images.shape[1]
        augment = None
        if self.augmentation is not None:
            augment = Augment(self.augmentation, size, self.seed, self.dataset_name)

        def dataset(mask: np.ndarray, transform: Augment | None = None) -> FaceArrayDataset:
            idx = np.flatnonzero(mask)
            images = self.cache.images[idx]
            return FaceArrayDataset(images, targets[idx], 0, transform, attributes[idx])

        splits = {name: dataset(masks[name]) for name in ("val", "test")}
        splits["train"] = dataset(masks["train"], augment)
        parts = {}
        if self.test_fold is None:  # the official test sets, reported apart
            parts = {p: dataset((plan.split == s) & labelled) for p, s in self.test_parts.items()}
        counts = ", ".join(f"{k} {int(m.sum())}" for k, m in masks.items())
        rank_zero_info(f"{self.dataset_name}: {counts} faces")
        return [SourceData(self.dataset_name, self.task_names, **splits, test_parts=parts,
                           tested_on=self.tested_on_words(plan))]  # fmt: skip

    def tested_on_words(self, plan: S.SplitPlan) -> str:
        """Which faces the test holds under the fold options, in words (:meth:`select`); the
        number of folds is the plan's (Adience's own 5, whatever ``k_folds`` says)."""
        folds = len(np.unique(plan.fold[plan.fold >= 0]))
        if self.test_fold is not None:
            return f"fold {self.test_fold} of {folds}"
        if plan.official:
            parts = f" ({', '.join(self.test_parts)})" if self.test_parts else ""
            return f"its official test split{parts}"
        if self.val_fold is not None:
            return f"fold {self.val_fold} of {folds}, held out"
        return f"a seeded test split (data.seed {self.seed})"

    def select(self, plan: S.SplitPlan) -> dict[str, np.ndarray]:
        """Boolean masks of the train / val / test items under the fold options."""
        masks = plan.select(self.val_fold, self.test_fold)
        if self.val_fold is not None and (masks["val"] == masks["test"]).all():
            rank_zero_info(
                f"{self.dataset_name}: fold {self.val_fold} is held out for validation and test "
                "(no official test split): do not select checkpoints or stop early on it"
            )
        elif not masks["val"].any():
            rank_zero_info(
                f"{self.dataset_name} has no validation split: validating on the test "
                "split (as the papers report); set val_fold for a held-out fold"
            )
            masks["val"] = masks["test"]
        return masks

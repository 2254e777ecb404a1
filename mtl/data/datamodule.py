"""Base LightningDataModule shared by every face source: task set, loaders, seeding."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from mtl.data.sampler import Balance, BalancedSourceSampler
from mtl.tasks import DEFAULT_AGE_EDGES, Task, build_tasks


class FaceDataModule(L.LightningDataModule):
    """Common plumbing: which tasks the run learns, batch size, workers, seed, loaders.

    Subclasses implement :meth:`labelled_tasks` (what the data can label) and :meth:`setup`,
    which must fill ``train_set``, ``val_set`` and ``test_set`` with datasets yielding the
    batch contract of :mod:`mtl.data.dataset`, columns in the order of :attr:`tasks`.
    """

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        age_edges: Sequence[int] = DEFAULT_AGE_EDGES,
        batch_size: int = 128,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        """
        Args:
            tasks: restrict the run to these tasks (default: every task the data labels).
                A single task gives single-task training with the same code.
            age_edges: lower bounds in years of every age group but the first (half-open bins).
            batch_size: samples per training batch (the papers use 128).
            num_workers: DataLoader worker processes.
            seed: seed of data generation, splits and shuffling.
        """
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        available = self.labelled_tasks()
        requested = available if tasks is None else list(tasks)
        missing = set(requested) - set(available)
        if missing:
            raise ValueError(
                f"{type(self).__name__} has no labels for task(s) {sorted(missing)}; "
                f"it labels: {', '.join(available)}"
            )
        self.tasks: tuple[Task, ...] = build_tasks(requested, age_edges)
        self.age_edges: list[int] = list(age_edges)
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    @property
    def task_names(self) -> list[str]:
        """The run's task names in canonical order (the CLI links these to the model)."""
        return [t.name for t in self.tasks]

    @property
    def source_name(self) -> str:
        """Short name of this data in per-source metric keys (``val/<source>/<task>/acc``)."""
        name = type(self).__name__.removesuffix("DataModule")
        return name.lower() or "data"

    def labelled_tasks(self) -> list[str]:
        """Names of the tasks this data provides labels for."""
        raise NotImplementedError

    def _loader(self, dataset: Dataset | None, stage: str, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__} has no {stage} set; was setup() called?")
        sampler = None
        if shuffle:  # order from (seed, epoch) only: a resumed run replays it; DDP-sharded
            size = len(dataset)  # type: ignore[arg-type]
            sampler = self.train_sampler([size], "proportional")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),  # worker seeds (augmentation)
        )

    def train_sampler(
        self, sizes: list[int], balance: Balance, weights: list[float] | None = None
    ) -> BalancedSourceSampler:
        """The seeded training sampler over sources of ``sizes``, sharded for this DDP rank."""
        world, rank = 1, 0
        if self.trainer is not None:
            world, rank = self.trainer.world_size, self.trainer.global_rank
        return BalancedSourceSampler(sizes, balance, weights, self.seed, world, rank)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, "train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, "val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, "test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, "predict", shuffle=False)

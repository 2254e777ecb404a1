"""Several sources, one run: each source labels some tasks; batches mix them.

Sources are any :class:`FaceDataModule` (a real dataset's, the synthetic one), each optionally
restricted to some tasks with its own ``tasks`` option. The run's tasks are the union. Training
draws from the concatenated sources through :class:`BalancedSourceSampler` (the papers'
duplication of small sources by default); validation and test keep one loader per source, so
metrics are reported per source as well as per task.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from mtl.data.datamodule import FaceDataModule
from mtl.data.sampler import Balance, BalancedSourceSampler
from mtl.tasks import IGNORE_INDEX, TASK_NAMES, build_tasks


class SourceView(Dataset):
    """One source's dataset seen with the run's task columns and its source id."""

    def __init__(self, dataset: Dataset, columns: Sequence[int], num_tasks: int, source: int):
        self.dataset = dataset
        self.columns = torch.as_tensor(list(columns), dtype=torch.long)  # source col -> run col
        self.num_tasks = num_tasks
        self.source = torch.tensor(source, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = dict(self.dataset[index])
        targets = torch.full((self.num_tasks,), IGNORE_INDEX, dtype=torch.long)  # T
        targets[self.columns] = item["targets"]
        item.update(targets=targets, mask=targets != IGNORE_INDEX, source=self.source)
        return item


class MultiSourceDataModule(FaceDataModule):
    """Combines source DataModules with a balancing sampler and per-source evaluation."""

    def __init__(
        self,
        sources: list[FaceDataModule],
        balance: Balance = "equal",
        weights: list[float] | None = None,
        **kwargs,
    ) -> None:
        """
        Args:
            sources: the source DataModules (their own batch size and workers are not used).
            balance: ``equal`` duplicates smaller sources so each fills the same share of an
                epoch (Sang & Cuong); ``proportional`` uses every sample once; ``weights``
                gives source i the share ``weights[i] / sum(weights)``.
            weights: per-source shares for ``balance: weights``, in ``sources`` order.
            **kwargs: :class:`FaceDataModule` options (tasks, age edges, batch size, …).
        """
        if not sources:
            raise ValueError("MultiSourceDataModule needs at least one source")
        self.sources = list(sources)
        super().__init__(**kwargs)
        self.balance, self.weights = balance, weights
        if balance == "weights" and (weights is None or len(weights) != len(self.sources)):
            raise ValueError(f"balance=weights needs {len(self.sources)} weights, got {weights}")
        for src in self.sources:  # one age binning for the whole run
            src.age_edges = list(self.age_edges)
            src.tasks = build_tasks(src.task_names, self.age_edges)
        self.source_names = self._names()
        self.train_sets: list[Dataset] = []
        self.val_sets: list[Dataset] = []
        self.test_sets: list[Dataset] = []

    def labelled_tasks(self) -> list[str]:
        owned = {t for src in self.sources for t in src.task_names}
        return [t for t in TASK_NAMES if t in owned]

    def _names(self) -> list[str]:
        names = [src.source_name for src in self.sources]
        return [n if names.count(n) == 1 else f"{n}{i}" for i, n in enumerate(names)]

    def prepare_data(self) -> None:
        for src in self.sources:
            src.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        if self.train_sets:
            return
        run = self.task_names
        for i, src in enumerate(self.sources):
            src.setup(stage)
            columns = [run.index(t) for t in src.task_names]
            if not set(src.task_names) & set(run):
                rank_zero_info(f"source {self.source_names[i]} labels none of the run's tasks")
            for split in ("train", "val", "test"):
                dataset = getattr(src, f"{split}_set")
                view = SourceView(dataset, columns, len(run), i)
                getattr(self, f"{split}_sets").append(view)
        self.train_set = ConcatDataset(self.train_sets)
        self.val_set, self.test_set = ConcatDataset(self.val_sets), ConcatDataset(self.test_sets)

    def train_dataloader(self) -> DataLoader:
        if not self.train_sets:
            raise RuntimeError("MultiSourceDataModule has no train set; was setup() called?")
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=self.source_sampler(),
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _per_source(self, sets: list[Dataset]) -> list[DataLoader]:
        return [
            DataLoader(d, batch_size=self.batch_size, num_workers=self.num_workers) for d in sets
        ]

    def val_dataloader(self) -> list[DataLoader]:
        return self._per_source(self.val_sets)

    def test_dataloader(self) -> list[DataLoader]:
        return self._per_source(self.test_sets)

    def epoch_composition(self) -> dict[str, int]:
        """Samples each source contributes to one training epoch (all ranks together)."""
        return dict(zip(self.source_names, self.source_sampler().counts, strict=True))

    def source_sampler(self) -> BalancedSourceSampler:
        """The balancing sampler over this run's sources (sizes of their training sets)."""
        sizes = [len(d) for d in self.train_sets]  # type: ignore[arg-type]
        return self.train_sampler(sizes, self.balance, self.weights)

"""The base LightningDataModule: a run's tasks, its sources, and the loaders over them.

Every DataModule serves one or more *sources* (a dataset samples come from: GENKI-4K, a
synthetic smile-only set, …). Each source has a name, the tasks it labels and its own
train / val / test datasets; ``batch["source"]`` is the source's index in :attr:`source_names`.
Training draws from all sources through :class:`~mtl.data.sampler.BalancedSourceSampler`;
validation and test read every sample once, the sources interleaved
(:class:`~mtl.data.sampler.InterleavedSampler`), and the model reports metrics per task and per
source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from mtl.data.datasets import WithSource
from mtl.data.device import DataPath, DeviceFaces, choose_data_path, face_arrays
from mtl.data.faces import FaceSettings
from mtl.data.sampler import Balance, BalancedSourceSampler, InterleavedSampler, source_counts
from mtl.errors import ConfigError
from mtl.tasks import DEFAULT_AGE_EDGES, Task, build_tasks, make_task

SPLIT_NAMES = ("train", "val", "test")
RESUMED = "as the checkpoint trained: "
"""How a resumed run's data path says where it came from, before the original reason."""


@dataclass
class SourceData:
    """One source of a run: its name, the tasks it labels, and its datasets.

    The datasets yield the batch contract of :mod:`mtl.data.datasets` with the columns of the
    DataModule's :attr:`~FaceDataModule.tasks` and ``source`` set to this source's index.
    ``test_parts`` names official test sets a test reports separately (FER-2013's ``public``
    and ``private``), each as an evaluation source ``<name>_<part>`` of its own; ``tested_on``
    says which faces the test holds (a fold, the official test split), for the model card.
    """

    name: str
    tasks: list[str]
    train: Dataset
    val: Dataset
    test: Dataset
    test_parts: dict[str, Dataset] = field(default_factory=dict)
    tested_on: str = "its test split"

    def evaluation(self, split: str) -> dict[str, Dataset]:
        """The evaluation sources this source gives a split, by name."""
        if split == "test" and self.test_parts:
            return {f"{self.name}_{part}": ds for part, ds in self.test_parts.items()}
        return {self.name: getattr(self, split)}


class FaceDataModule(L.LightningDataModule):
    """Common plumbing: the run's tasks, its sources, batch size, workers, seed and loaders.

    Subclasses implement :meth:`labelled_tasks` (what the data can label) and
    :meth:`load_sources` (build each source's datasets, columns in the order of :attr:`tasks`).
    """

    device_data_option = "--data.device_data"
    """The command-line option the console names to change the data path (``mtl bench``
    names its own)."""

    def __init__(
        self,
        tasks: Sequence[str] | None = None,
        age_edges: Sequence[int] = DEFAULT_AGE_EDGES,
        batch_size: int = 128,
        num_workers: int = 0,
        seed: int = 0,
        balance: Balance = "equal",
        weights: list[float] | None = None,
        device_data: bool | None = None,
    ) -> None:
        """
        Args:
            tasks: the tasks the run learns (default: every default task the data labels; the
                opt-in ``age_years`` regression must be named). One task gives single-task
                training with the same code.
            age_edges: lower bounds in years of every age group but the first (half-open bins).
            batch_size: samples per batch (the papers use 128).
            num_workers: DataLoader worker processes.
            seed: seed of data generation, splits, shuffling and augmentation.
            balance: how sources share a training epoch: ``equal`` duplicates smaller sources
                so each fills the same share (Sang & Cuong); ``proportional`` uses every sample
                once; ``weights`` gives source i the share ``weights[i] / sum(weights)``.
            weights: per-source shares for ``balance: weights``, in :attr:`source_names` order.
            device_data: hold every training face on the training device (the GPU, or the
                CPU's memory) and gather and augment each batch there as tensor operations
                (:mod:`mtl.data.device`), so training is not bound by per-sample augmentation in
                DataLoader workers; ``num_workers`` then only serves evaluation. None (default):
                wherever the faces fit (:func:`~mtl.data.device.choose_data_path`); ``false``:
                the DataLoader's per-sample augmentation (albumentations).
        """
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.balance, self.weights = balance, weights
        self.device_data = device_data
        self.data_path: DataPath | None = None  # resolved when training starts
        self.device_faces: DeviceFaces | None = None
        self.age_edges: list[int] = list(age_edges)
        self.requested_tasks = None if tasks is None else list(tasks)
        self.tasks: tuple[Task, ...] = self.select_tasks(tasks)
        self.sources: list[SourceData] = []

    def select_tasks(self, requested: Sequence[str] | None) -> tuple[Task, ...]:
        """The run's tasks: ``requested`` (checked against what the data labels), or by default
        every default task it labels."""
        available = self.labelled_tasks()
        if requested is None:
            requested = [t for t in available if make_task(t).default]
        missing = set(requested) - set(available)
        if missing:
            raise ValueError(
                f"{type(self).__name__} has no labels for task(s) {sorted(missing)}; "
                f"it labels: {', '.join(available)}"
            )
        return build_tasks(requested, self.age_edges)

    @property
    def task_names(self) -> list[str]:
        """The run's task names in canonical order (the CLI links these to the model)."""
        return [t.name for t in self.tasks]

    @property
    def source_names(self) -> list[str]:
        """Names of the sources, in ``batch["source"]`` order (known after :meth:`setup`)."""
        return [s.name for s in self.sources]

    @property
    def source_tasks(self) -> dict[str, list[str]]:
        """The run's tasks each source labels: the sources a validation reports on."""
        return self.evaluation_sources("val")

    def evaluation_sources(self, split: str) -> dict[str, list[str]]:
        """The sources a validation or test reports on, in ``batch["source"]`` order, with the
        tasks each labels: every source, or for ``test`` a source's named parts."""
        return {name: list(s.tasks) for s in self.sources for name in s.evaluation(split)}

    def tested_on(self) -> dict[str, str]:
        """Which faces each source's test holds (``fold 1 of 4``, ``its official test split``),
        by source name (known after :meth:`setup`): a run's ``run.json`` records it, so its
        model card names the faces its metrics were measured on."""
        return {s.name: s.tested_on for s in self.sources}

    def face_settings(self) -> FaceSettings | None:
        """How this data's faces were cropped (checkpoints record it, so ``mtl analyze`` crops
        new photos the same way); None when unknown."""
        return None

    def labelled_tasks(self) -> list[str]:
        """Names of the tasks this data provides labels for, in registry order."""
        raise NotImplementedError

    def load_sources(self, stage: str | None) -> list[SourceData]:
        """Build every source's datasets for the run's tasks."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.sources:
            return
        self.sources = self.load_sources(stage)
        if self.balance == "weights" and len(self.weights or ()) != len(self.sources):
            raise ConfigError(
                f"balance=weights needs one weight per source {self.source_names}, "
                f"got {self.weights}"
            )

    def split(self, name: str) -> ConcatDataset:
        """Every source's ``name`` split, concatenated in source order."""
        if not self.sources:
            raise RuntimeError(f"{type(self).__name__} has no {name} set; was setup() called?")
        return ConcatDataset([getattr(s, name) for s in self.sources])

    def train_sizes(self) -> list[int]:
        """Training samples of each source; a source with none cannot be balanced."""
        sizes = [len(s.train) for s in self.sources]  # type: ignore[arg-type]
        empty = [s.name for s, n in zip(self.sources, sizes, strict=True) if n == 0]
        if empty:
            raise ConfigError(f"source(s) {empty} have no training samples")
        return sizes

    def train_sampler(self, generator: torch.Generator | None = None) -> BalancedSourceSampler:
        """The seeded, balanced training order, sharded for this DDP rank and starting at the
        epoch about to run (also when resuming). Each epoch it also sets the augmentation's
        random streams and reseeds the loader's ``generator`` (the workers' base seed) from
        (seed, epoch), so nothing in an epoch depends on the epochs before it."""
        world, rank, epoch = 1, 0, 0
        if self.trainer is not None:
            world, rank = self.trainer.world_size, self.trainer.global_rank
            epoch = self.trainer.fit_loop.epoch_progress.current.processed

        def start_epoch(e: int) -> None:
            for s in self.sources:
                s.train.set_epoch(e, rank)  # type: ignore[attr-defined]
            if self.device_faces is not None:
                self.device_faces.set_epoch(e, rank)
            if generator is not None:
                generator.manual_seed(self.seed * 1_000_003 + e)

        sizes = self.train_sizes()
        return BalancedSourceSampler(
            sizes, self.balance, self.weights, self.seed, world, rank, epoch, [start_epoch]
        )

    def epoch_composition(self) -> dict[str, int]:
        """Samples each source contributes to one training epoch (all ranks together)."""
        counts = source_counts(self.train_sizes(), self.balance, self.weights)
        return dict(zip(self.source_names, counts, strict=True))

    def _loader(
        self, dataset: Dataset, sampler: Sampler, generator: torch.Generator | None = None
    ) -> DataLoader:
        # Every loader has its own generator: nothing draws from the global RNG, which a
        # resumed run restores. Training workers start afresh every epoch (not persistent), so
        # they pick up the epoch's augmentation stream.
        training = isinstance(sampler, BalancedSourceSampler)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0 and not training,
            generator=generator or torch.Generator().manual_seed(self.seed),
            pin_memory=self._pin_memory(),
        )

    def _pin_memory(self) -> bool:
        """Page-locked batches when training on a GPU: Lightning copies them with
        ``non_blocking``, which only overlaps (and does not wait) from page-locked memory."""
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def training_data_path(self, device: torch.device | None = None) -> DataPath:
        """How training batches are made, decided once and said on the console: as
        ``device_data`` sets it; else as the resumed checkpoint trained (the DataLoader for a
        checkpoint older than the choice); else chosen for the faces and the training device,
        rank 0's choice on every DDP rank. Outside a Trainer the faces stay in the DataLoader
        unless a ``device`` is given (nothing there would turn indices into batches)."""
        if self.data_path is not None:  # set, or restored by load_state_dict
            return self.data_path
        trainer = self.trainer
        if self.device_data is not None:
            path = DataPath(self.device_data, f"data.device_data={str(self.device_data).lower()}")
        elif trainer is not None and trainer.ckpt_path is not None:
            unknown = f"the checkpoint records no data path for {type(self).__qualname__}"
            path = DataPath(False, f"{unknown} (older than this choice, or another DataModule's)")
        elif trainer is None and device is None:
            return DataPath(False, "no Trainer and no device to hold the faces on")
        else:
            device = trainer.strategy.root_device if trainer is not None else device
            processes = trainer.num_devices if trainer is not None and device.type == "cpu" else 1
            path = choose_data_path([s.train for s in self.sources], device, processes)
            if trainer is not None:
                path = trainer.strategy.broadcast(path)  # rank 0's; every rank calls it, once
        self._set_data_path(path)
        return path

    def _set_data_path(self, path: DataPath) -> None:
        """Keep the run's data path and say it on the console, once."""
        self.data_path = path
        other = "false" if path.in_memory else "true"
        rank_zero_info(
            f"mtl: training data: {path.describe()}; {self.device_data_option}={other} to change it"
        )

    def state_dict(self) -> dict[str, bool | str]:
        """The training data path, so a resumed run keeps it wherever it lands."""
        if self.data_path is None:
            return {}
        return {"in_memory": self.data_path.in_memory, "reason": self.data_path.reason}

    def load_state_dict(self, state_dict: dict[str, bool | str]) -> None:
        """A resumed run's data path: the checkpoint's, unless ``device_data`` sets one."""
        if self.device_data is None and "in_memory" in state_dict:
            first = str(state_dict.get("reason", "")).removeprefix(RESUMED)  # one prefix
            self._set_data_path(DataPath(bool(state_dict["in_memory"]), RESUMED + first))

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator()
        if not self.training_data_path().in_memory:
            return self._loader(self.split("train"), self.train_sampler(generator), generator)
        if self.device_faces is None:
            arrays = [face_arrays(s.train) for s in self.sources]
            self.device_faces = DeviceFaces(arrays, self.seed)
        # Only indices travel; on_after_batch_transfer builds the batch on the device. The
        # loader's own generator, as on the DataLoader path: an iterator draws its base seed
        # from it, else from the global generator, which would shift every dropout mask.
        indices = range(len(self.device_faces))
        return DataLoader(
            indices,
            batch_size=self.batch_size,
            sampler=self.train_sampler(generator),
            generator=generator,
            pin_memory=self._pin_memory(),
        )

    def on_after_batch_transfer(self, batch: object, dataloader_idx: int) -> object:
        """``device_data``: a training batch of indices becomes faces, augmented, on the device."""
        if self.device_faces is not None and isinstance(batch, torch.Tensor):
            return self.device_faces.batch(batch)
        return batch

    def _evaluation(self, split: str) -> DataLoader:
        """Every sample of every evaluation source once, ``source`` set to its index in
        :meth:`evaluation_sources`."""
        parts = [ds for s in self.sources for ds in s.evaluation(split).values()]
        views = [WithSource(ds, i) for i, ds in enumerate(parts)]
        sampler = InterleavedSampler([len(v) for v in views], self.seed)
        return self._loader(ConcatDataset(views), sampler)

    def val_dataloader(self) -> DataLoader:
        return self._evaluation("val")

    def test_dataloader(self) -> DataLoader:
        return self._evaluation("test")

    def predict_dataloader(self) -> DataLoader:
        return self._evaluation("test")

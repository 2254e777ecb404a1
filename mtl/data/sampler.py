"""Balancing sampler over concatenated sources: small sources are duplicated.

Sang & Cuong keep "the number of training data for each task equally": with dataset A of 3,000
and B of 30,000 samples, A is repeated 10 times for a 60,000-sample epoch. ``equal`` does that;
``proportional`` uses every sample once (no balancing); ``weights`` gives each source a share of
the epoch.

The index list depends only on (seed, epoch), so every DDP rank derives the same list and takes
a disjoint shard of it (``rank::num_replicas`` after padding to a multiple of ``num_replicas``).
It subclasses :class:`DistributedSampler`, so Lightning neither wraps nor replaces it and calls
:meth:`set_epoch` every epoch, which reshuffles and tells the ``on_epoch`` callbacks (the
augmentation's random streams). A sampler built for a resumed run starts at that run's epoch:
Lightning creates the first iterator of a resumed run before it calls :meth:`set_epoch`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DistributedSampler, Sampler

Balance = Literal["equal", "proportional", "weights"]


def source_counts(
    sizes: Sequence[int], balance: Balance = "equal", weights: Sequence[float] | None = None
) -> list[int]:
    """Samples drawn from each source per epoch."""
    if not sizes or min(sizes) < 1:
        raise ValueError(f"every source needs at least one sample, got sizes {list(sizes)}")
    if balance == "proportional":
        return list(sizes)
    if balance == "equal":
        return [max(sizes)] * len(sizes)
    if balance == "weights":
        if weights is None or len(weights) != len(sizes) or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(f"weights must be {len(sizes)} non-negative numbers, got {weights}")
        total = sum(sizes)
        return [round(total * w / sum(weights)) for w in weights]
    raise ValueError(f"unknown balance {balance!r}; choose equal, proportional or weights")


class BalancedSourceSampler(DistributedSampler):
    """Indices into a ConcatDataset of sources of ``sizes``, balanced per ``balance``."""

    def __init__(
        self,
        sizes: Sequence[int],
        balance: Balance = "equal",
        weights: Sequence[float] | None = None,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        epoch: int = 0,
        on_epoch: Sequence[Callable[[int], None]] = (),
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        # DistributedSampler's own state, set directly: it needs no dataset or process group here.
        self.num_replicas, self.rank, self.seed = num_replicas, rank, seed
        self.shuffle, self.drop_last = True, False
        self.on_epoch = list(on_epoch)
        self.set_epoch(epoch)
        self.sizes = list(sizes)
        self.counts = source_counts(self.sizes, balance, weights)
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self.total_size = math.ceil(sum(self.counts) / num_replicas) * num_replicas
        self.num_samples = self.total_size // num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        for callback in self.on_epoch:
            callback(epoch)

    def epoch_indices(self) -> list[int]:
        """The whole epoch (every rank's shard together), before sharding and padding."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        parts = []
        for size, count, offset in zip(self.sizes, self.counts, self.offsets, strict=True):
            copies, rest = divmod(count, size)
            chosen = [torch.randperm(size, generator=g) for _ in range(copies)]
            chosen.append(torch.randperm(size, generator=g)[:rest])  # each item at most once more
            parts.append(torch.cat(chosen) + offset)
        every = torch.cat(parts)
        return every[torch.randperm(len(every), generator=g)].tolist()

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices()
        indices += indices[: self.total_size - len(indices)]  # pad so shards are equal
        return iter(indices[self.rank : self.total_size : self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


class InterleavedSampler(Sampler[int]):
    """Every sample of a ConcatDataset of sources once, the sources interleaved in proportion
    to their sizes, each in a seeded random order that is the same every epoch: any prefix of
    the order holds each source in its share and a random sample of it, so evaluating only the
    first batches (``limit_val_batches``) still sees every source and every class (a
    class-sorted dataset, such as FER-2013's folders, would otherwise show only its first
    classes), and always the same faces, so epochs compare."""

    def __init__(self, sizes: Sequence[int], seed: int = 0) -> None:
        self.sizes, self.seed = list(sizes), seed

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, 0x1E7E])
        starts = np.cumsum([0, *self.sizes[:-1]])
        items = [start + rng.permutation(n) for start, n in zip(starts, self.sizes, strict=True)]
        # the j-th item of a source of size n sits at (j + 0.5) / n of the way through
        keys = np.concatenate([(np.arange(n) + 0.5) / n for n in self.sizes])
        order = np.concatenate(items or [np.array([], np.int64)])[np.argsort(keys, kind="stable")]
        return iter(order.tolist())

    def __len__(self) -> int:
        return sum(self.sizes)

"""BalancedSourceSampler: duplication counts, determinism, reshuffling, disjoint DDP shards."""

from __future__ import annotations

import os
from collections import Counter

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mtl.data.sampler import BalancedSourceSampler, source_counts


def per_source(indices: list[int], sizes: list[int]) -> list[int]:
    edges = [sum(sizes[: i + 1]) for i in range(len(sizes))]
    return [
        sum(1 for i in indices if lo <= i < hi)
        for lo, hi in zip([0, *edges[:-1]], edges, strict=True)
    ]


def test_equal_duplicates_the_small_source_as_in_the_paper():
    sampler = BalancedSourceSampler([3000, 30000], "equal")
    indices = list(sampler)
    assert len(indices) == len(sampler) == 60000
    assert per_source(indices, [3000, 30000]) == [30000, 30000]
    small = Counter(i for i in indices if i < 3000)
    assert set(small.values()) == {10}  # every small-source sample exactly 10 times
    big = Counter(i for i in indices if i >= 3000)
    assert set(big.values()) == {1}


def test_uneven_duplication_spreads_the_remainder():
    indices = list(BalancedSourceSampler([3, 10], "equal"))
    small = Counter(i for i in indices if i < 3)
    assert sum(small.values()) == 10 and set(small.values()) <= {3, 4}


def test_proportional_and_weights():
    assert source_counts([100, 300], "proportional") == [100, 300]
    assert source_counts([100, 300], "weights", [1, 3]) == [100, 300]
    assert source_counts([100, 300], "weights", [1, 1]) == [200, 200]
    with pytest.raises(ValueError, match="weights"):
        source_counts([100, 300], "weights", [1])
    with pytest.raises(ValueError, match="at least one"):
        source_counts([0, 5])


def test_seed_and_epoch_determinism():
    a, b = BalancedSourceSampler([5, 50], seed=1), BalancedSourceSampler([5, 50], seed=1)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == sorted(first)  # the same samples, reshuffled
    a.set_epoch(0)
    assert list(a) == first  # and reproducible for (seed, epoch)
    assert list(BalancedSourceSampler([5, 50], seed=2)) != first


@pytest.mark.parametrize("world", [2, 3])
def test_shards_are_disjoint_and_cover_the_epoch(world):
    sizes = [7, 40]
    whole = BalancedSourceSampler(sizes, seed=3).epoch_indices()
    shards = [
        list(BalancedSourceSampler(sizes, seed=3, num_replicas=world, rank=r)) for r in range(world)
    ]
    assert len({len(s) for s in shards}) == 1
    positions = [p for r in range(world) for p in range(r, len(shards[0]) * world, world)]
    assert sorted(positions) == list(range(len(shards[0]) * world))  # disjoint positions
    merged = Counter(i for s in shards for i in s)
    padding = len(shards[0]) * world - len(whole)
    assert sum(merged.values()) - padding == len(whole)
    assert not (Counter(whole) - merged)  # nothing of the epoch is lost


def _rank_indices(rank: int, world: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    sampler = BalancedSourceSampler([30, 300], seed=5, num_replicas=world, rank=rank)
    sampler.set_epoch(2)
    mine = torch.tensor(list(sampler))
    gathered = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine)
    if rank == 0:
        out["shards"] = [g.tolist() for g in gathered]
    dist.destroy_process_group()


def test_two_process_gloo_run_matches_the_single_process_epoch():
    with mp.Manager() as manager:
        out = manager.dict()
        port = 29500 + os.getpid() % 1000
        mp.spawn(_rank_indices, args=(2, port, out), nprocs=2, join=True)
        shards = out["shards"]
    single = BalancedSourceSampler([30, 300], seed=5)
    single.set_epoch(2)
    whole = single.epoch_indices()
    assert Counter(shards[0] + shards[1]) == Counter(whole)  # 600 is even: no padding
    assert set(range(30)) <= set(whole) and per_source(whole, [30, 300]) == [300, 300]


def test_lightning_ddp_keeps_the_sampler_and_shards_every_epoch(tmp_path):
    """A real 2-process Lightning DDP run (gloo): Lightning neither wraps nor replaces the
    sampler, calls set_epoch, and the ranks' shards together are the single-process epoch;
    every rank trains on rank 0's data path."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("ddp_sampler_run.py")
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    epochs = []
    for epoch in ("0", "1"):
        assert [r[epoch]["sampler"] for r in ranks] == ["BalancedSourceSampler"] * 2
        assert [r[epoch]["rank"] for r in ranks] == [0, 1]
        single = BalancedSourceSampler([30, 90], seed=7)
        single.set_epoch(int(epoch))
        union = ranks[0][epoch]["indices"] + ranks[1][epoch]["indices"]
        assert Counter(union) == Counter(single.epoch_indices())  # 180 samples, nothing lost
        epochs.append(union)
    assert epochs[0] != epochs[1]  # reshuffled between epochs
    # rank 1 saw too little memory for the faces, and still took rank 0's in-memory path
    assert [r["in_memory"] for r in ranks] == [True, True]


def test_single_source_training_order_depends_only_on_seed_and_epoch():
    """So a run resumed at epoch k sees exactly the batches an uninterrupted run would."""
    from mtl.data import SyntheticDataModule, SyntheticSource

    def sampler(seed: int, epoch: int) -> list[int]:
        dm = SyntheticDataModule([SyntheticSource("a", ["smile"], 40, 8, 8)], seed=seed)
        dm.setup("fit")
        s = dm.train_dataloader().sampler
        s.set_epoch(epoch)
        return list(s)

    assert sampler(3, 2) == sampler(3, 2)
    assert sampler(3, 2) != sampler(3, 1)
    assert sorted(sampler(3, 2)) == list(range(40))  # every sample once


def test_a_sampler_starts_at_its_epoch_and_tells_the_augmentation():
    """A resumed run builds its sampler at the resumed epoch; every set_epoch reaches the
    augmentation's random streams."""
    seen: list[int] = []
    resumed = BalancedSourceSampler([5, 50], seed=1, epoch=3, on_epoch=[seen.append])
    fresh = BalancedSourceSampler([5, 50], seed=1)
    fresh.set_epoch(3)
    assert list(resumed) == list(fresh) and seen == [3]
    resumed.set_epoch(4)
    assert seen == [3, 4]


def test_interleaved_evaluation_order_keeps_every_source_in_any_prefix():
    from mtl.data.sampler import InterleavedSampler

    sizes = [4, 40, 12]
    order = list(InterleavedSampler(sizes, seed=3))
    assert sorted(order) == list(range(56)) and len(InterleavedSampler(sizes)) == 56
    assert per_source(order[:14], sizes) == [1, 10, 3]  # a quarter of the way: a quarter each
    assert order == list(InterleavedSampler(sizes, seed=3))  # the same every epoch
    # A class-sorted source (items 4..23 one class, 24..43 another): a prefix sees both.
    first = [i for i in order[:14] if 4 <= i < 44]
    assert any(i < 24 for i in first) and any(i >= 24 for i in first)

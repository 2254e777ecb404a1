"""Seeded, stratified train/val/test splits and k-fold assignments for a face cache.

Official splits (FER-2013 Usage, CelebA partition) are used as they are. Datasets without one get
a split stratified by their labels, so a class-sorted file (GENKI-4K) still gives balanced
splits. Folds are assigned round-robin within each stratum of the k-fold pool, so each fold
has the same class mix. Everything depends only on the labels, the item ids' order and the seed.

Where a dataset names the person in each photo (IMDB-WIKI: many photos of one celebrity), the
split and the folds keep each person on one side: whole identity groups are assigned stratum by
stratum (a person's stratum is the one most of their photos are in), largest first, each to the
part furthest below its share so far. Otherwise the same face would be trained on and tested
on, and test accuracy would measure recognition of people, not of attributes. A table without
groups splits exactly as before.

The k-fold pool is what cross-validation may train on: a dataset's official training split, or
every item of a dataset without an official split. With ``val_fold`` set, a run trains on the
other folds and validates on the held-out one; a dataset with an official test split still tests
on it (FER-2013's PublicTest and PrivateTest), one without tests on the held-out fold, as the
papers' k-fold does ("k - 1 parts train, the remaining part tests").
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtl.data.cache import write_csv
from mtl.errors import ConfigError
from mtl.tasks import LABEL_COLUMNS

SPLITS = ("train", "val", "test")


@dataclass
class SplitPlan:
    """Which items are train / val / test, and every item's fold (-1 outside the k-fold pool).
    ``official``: the split is the dataset's own (its test split stays the test set in
    cross-validation)."""

    split: np.ndarray  # N, "train" | "val" | "test"
    fold: np.ndarray  # N, int
    official: bool = False

    def select(
        self, val_fold: int | None = None, test_fold: int | None = None
    ) -> dict[str, np.ndarray]:
        """N-bool masks of ``train``/``val``/``test`` under the fold options (see the module
        docstring); ``val`` is empty when the dataset has no validation split."""
        held_out = None if val_fold is None else self.fold == val_fold
        if held_out is not None and not held_out.any():
            folds = sorted(int(f) for f in set(self.fold) if f >= 0)
            raise ConfigError(f"val_fold {val_fold} holds no items (this dataset's folds: {folds})")
        if test_fold is not None:
            test = self.fold == test_fold
        elif held_out is not None and not self.official:
            test = held_out
        else:
            test = self.split == "test"
        if held_out is not None:
            val = held_out
            train = (self.fold >= 0) & ~held_out & ~test
        else:
            val = (self.split == "val") & ~test
            train = (self.split == "train") & ~test
        return {"train": train, "val": val, "test": test}


def strata(table: dict[str, np.ndarray]) -> np.ndarray:
    """One stratum id per item from all its label columns (value columns binned, see
    :class:`~mtl.tasks.LabelColumn`; an unknown label is a stratum value of its own)."""
    keys = []
    for name, column in LABEL_COLUMNS.items():
        if not column.stratify:
            continue
        values = table[name]
        if column.dtype == "value":
            capped = np.minimum(np.nan_to_num(values), column.strata_max)
            values = np.where(np.isnan(values), -1, capped // column.strata_width)
        keys.append(values.astype(np.int64))
    _, ids = np.unique(np.stack(keys, axis=1), axis=0, return_inverse=True)  # N x columns
    return ids.reshape(-1)


def allocate(sizes: Sequence[int], total: int) -> list[int]:
    """Split ``total`` over groups proportionally to ``sizes`` (largest remainder, exact sum)."""
    n = sum(sizes)
    if n == 0:
        return [0] * len(sizes)
    exact = [s * total / n for s in sizes]
    counts = [int(e) for e in exact]
    order = sorted(range(len(sizes)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _groups(labels: np.ndarray, pool: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled indices of ``pool`` grouped by stratum, strata in a fixed order."""
    by_stratum: dict[int, list[int]] = defaultdict(list)
    for i in pool:
        by_stratum[int(labels[i])].append(int(i))
    return [rng.permutation(by_stratum[k]) for k in sorted(by_stratum)]


def has_groups(table: dict[str, np.ndarray]) -> bool:
    """Whether the table names an identity group (a person) for any item."""
    return "group" in table and any(table["group"])


def _identity_units(
    table: dict[str, np.ndarray], pool: np.ndarray, rng: np.random.Generator
) -> list[list[np.ndarray]]:
    """Per stratum (in a fixed order), the item indices of each identity group of ``pool``,
    largest group first, equal sizes in seeded random order. An item without a group is a
    group of its own; a group's stratum is the one most of its items are in (the lowest on a
    tie)."""
    labels, names = strata(table), table["group"]
    members: dict[str, list[int]] = defaultdict(list)
    for i in pool:
        members[names[i] or f"\0{i}"].append(int(i))
    by_stratum: dict[int, list[np.ndarray]] = defaultdict(list)
    for name in sorted(members):
        items = np.array(members[name])
        values, counts = np.unique(labels[items], return_counts=True)
        by_stratum[int(values[np.argmax(counts)])].append(items)
    ordered = []
    for k in sorted(by_stratum):
        shuffled = [by_stratum[k][j] for j in rng.permutation(len(by_stratum[k]))]
        ordered.append(sorted(shuffled, key=len, reverse=True))  # stable: ties stay shuffled
    return ordered


def assign_groups(units: list[list[np.ndarray]], shares: Sequence[float], n: int) -> np.ndarray:
    """Part index (0..len(shares)-1) of each item, -1 outside ``units``: every group goes whole
    to the part furthest below its share (the first on a tie). Shares and fill carry over from
    one stratum to the next, so many small strata still fill every part, as the ungrouped
    round-robin does."""
    part = np.full(n, -1, dtype=np.int64)
    share = np.asarray(shares, dtype=float)
    target, filled = np.zeros(len(share)), np.zeros(len(share))
    for groups in units:
        target += share * sum(len(g) for g in groups)
        for items in groups:
            chosen = int(np.argmax(target - filled))
            part[items] = chosen
            filled[chosen] += len(items)
    return part


def stratified_split(
    table: dict[str, np.ndarray], fractions: tuple[float, float, float], seed: int
) -> np.ndarray:
    """Assign ``train``/``val``/``test`` to every item with the given fractions, per stratum
    (identity groups kept whole, see the module docstring)."""
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1):
        raise ValueError(
            f"split fractions must be 3 non-negative numbers summing to 1: {fractions}"
        )
    labels = strata(table)
    n = len(labels)
    rng = np.random.default_rng([seed, 0x5B11])
    if has_groups(table):
        parts = assign_groups(_identity_units(table, np.arange(n), rng), fractions, n)
        return np.array(SPLITS, dtype=object)[parts]
    groups = _groups(labels, np.arange(n), rng)
    sizes = [len(g) for g in groups]
    n_test = round(n * fractions[2])
    n_val = round(n * fractions[1])
    split = np.full(n, "train", dtype=object)
    for g, t, v in zip(groups, allocate(sizes, n_test), allocate(sizes, n_val), strict=True):
        split[g[:t]] = "test"
        split[g[t : t + v]] = "val"
    return split


def assign_folds(table: dict[str, np.ndarray], pool: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold 0..k-1 for the items in ``pool`` (stratified, balanced; identity groups kept
    whole), -1 elsewhere."""
    if k < 2:
        raise ValueError(f"k-fold needs k >= 2, got {k}")
    rng = np.random.default_rng([seed, 0xF01D])
    if has_groups(table):
        units = _identity_units(table, np.asarray(pool, dtype=np.int64), rng)
        return assign_groups(units, [1 / k] * k, len(table["id"]))
    folds = np.full(len(table["id"]), -1, dtype=np.int64)
    ordered = np.concatenate(_groups(strata(table), pool, rng) or [np.array([], np.int64)])
    folds[ordered.astype(np.int64)] = np.arange(len(ordered)) % k
    return folds


def read_split_file(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(ids, split, fold) from a saved split file, or None if it is unreadable."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        ids = np.array([r["id"] for r in rows], dtype=object)
        split = np.array([r["split"] for r in rows], dtype=object)
        fold = np.array([int(r["fold"]) for r in rows], dtype=np.int64)
    except (OSError, KeyError, ValueError):
        return None
    return ids, split, fold


def has_official_split(table: dict[str, np.ndarray]) -> bool:
    """Whether every item has the dataset's own train/val/test split (FER-2013, CelebA)."""
    return len(table["id"]) > 0 and all(s in SPLITS for s in table["split"])


def plan_splits(
    table: dict[str, np.ndarray], fractions: tuple[float, float, float], k_folds: int, seed: int
) -> SplitPlan:
    """Official splits/folds where the dataset has them, seeded stratified ones otherwise; folds
    over the official training split, or over every item of a dataset without one."""
    n = len(table["id"])
    official_split = has_official_split(table)
    official_folds = n > 0 and bool((table["fold"] >= 0).all())
    if official_folds:
        return SplitPlan(np.full(n, "train", dtype=object), table["fold"].copy(), False)
    if official_split:
        split = table["split"].copy()
        pool = np.flatnonzero(split == "train")
    else:
        split = stratified_split(table, fractions, seed)
        pool = np.arange(n)
    return SplitPlan(split, assign_folds(table, pool, k_folds, seed), official_split)


def load_or_plan(
    cache: Path,
    table: dict[str, np.ndarray],
    fractions: tuple[float, float, float],
    k_folds: int,
    seed: int,
) -> SplitPlan:
    """The plan saved with the cache for this seed and k (``splits/v2-seed<S>-k<K>.csv``; v2:
    folds over the whole k-fold pool), or a new one, saved. Every DDP rank may run this at once:
    the plan is deterministic and each rank writes it atomically under its own temporary name."""
    file = cache / "splits" / f"v2-seed{seed}-k{k_folds}.csv"
    ids = table["id"]
    official = has_official_split(table) and not (table["fold"] >= 0).all()
    if file.is_file():
        saved = read_split_file(file)
        if saved is not None and np.array_equal(saved[0], ids):
            return SplitPlan(saved[1], saved[2], official)
    plan = plan_splits(table, fractions, k_folds, seed)
    file.parent.mkdir(exist_ok=True)
    write_csv(file, ("id", "split", "fold"), zip(ids, plan.split, plan.fold, strict=True))
    return plan

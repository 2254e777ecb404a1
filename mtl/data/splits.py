"""Seeded, stratified train/val/test splits and k-fold assignments for a face cache.

Official splits (FER-2013 Usage, CelebA partition) are used as they are. Sources without one get
a split stratified by their labels, so a class-sorted file (GENKI-4K) still gives balanced
splits. Folds are assigned round-robin within each stratum of the training pool, so each fold
has the same class mix. Everything depends only on the labels, the item ids' order and the seed.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")


def strata(table: dict[str, np.ndarray]) -> np.ndarray:
    """One stratum id per item from its labels (age by decade, capped at 80+)."""
    age = table["age"]
    decade = np.where(np.isnan(age), -1, np.minimum(np.nan_to_num(age) // 10, 8)).astype(np.int64)
    keys = np.stack([table["smile"], table["emotion"], table["gender"], decade], axis=1)  # N x 4
    _, ids = np.unique(keys, axis=0, return_inverse=True)
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


def stratified_split(
    table: dict[str, np.ndarray], fractions: tuple[float, float, float], seed: int
) -> np.ndarray:
    """Assign ``train``/``val``/``test`` to every item with the given fractions, per stratum."""
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1):
        raise ValueError(
            f"split fractions must be 3 non-negative numbers summing to 1: {fractions}"
        )
    labels = strata(table)
    n = len(labels)
    rng = np.random.default_rng([seed, 0x5B11])
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
    """Fold 0..k-1 for the items in ``pool`` (stratified, balanced), -1 elsewhere."""
    if k < 2:
        raise ValueError(f"k-fold needs k >= 2, got {k}")
    folds = np.full(len(table["id"]), -1, dtype=np.int64)
    rng = np.random.default_rng([seed, 0xF01D])
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

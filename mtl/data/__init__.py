"""Face data, in the order it flows::

    raw files ──readers/──▶ records ──faces, prepare──▶ face cache (cache, splits)
        ──datasets, transforms──▶ per-source datasets ──datamodules/──▶ loaders ◀── sampler

* ``readers/``   one reader per dataset format: labels and layout → records and bad-record issues
* ``faces``      find and crop faces (MTCNN, Haar, given boxes, none)
* ``prepare``    records → a face cache, resumable (``mtl prepare``)
* ``cache``      the face cache on disk: written atomically, verified when opened
* ``splits``     train / val / test and k-folds of a cache, seeded and stratified
* ``datasets``   in-memory datasets and the batch contract
* ``transforms`` training augmentation and its random streams
* ``datamodules/`` the run's tasks and sources as Lightning DataModules
* ``sampler``    the balancing sampler that mixes sources in a training epoch

"Source" means one thing: a dataset that samples come from in a run (``batch["source"]``).

The DataModules are re-exported here, so configs name them briefly and stably:
``class_path: mtl.data.Genki4kDataModule``. They are imported on first use, so the modules that
need no Lightning (``faces``, ``preprocessing``, ``readers``, ``cache``) load without it (the
inference layer reads faces with them).
"""

from __future__ import annotations

import importlib
from typing import Any

_DATASETS = ("FaceArrayDataset",)


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = "mtl.data.datasets" if name in _DATASETS else "mtl.data.datamodules"
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'mtl.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "AdienceDataModule",
    "CachedDataModule",
    "CelebADataModule",
    "FaceArrayDataset",
    "FaceDataModule",
    "Fer2013DataModule",
    "Genki4kDataModule",
    "ImdbDataModule",
    "MultiSourceDataModule",
    "SyntheticDataModule",
    "SyntheticSource",
    "UTKFaceDataModule",
    "WikiDataModule",
]

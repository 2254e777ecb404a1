"""DataModules: the run's tasks and sources, served as loaders.

``base`` (the shared plumbing and the source contract), ``cached`` (one real dataset through its
face cache), ``real`` (one DataModule per real dataset), ``synthetic`` (drawn faces) and
``multisource`` (several DataModules mixed).
"""

from mtl.data.datamodules.base import FaceDataModule, SourceData
from mtl.data.datamodules.cached import CachedDataModule
from mtl.data.datamodules.multisource import MultiSourceDataModule
from mtl.data.datamodules.real import (
    DATAMODULES,
    AdienceDataModule,
    CelebADataModule,
    Fer2013DataModule,
    Genki4kDataModule,
    ImdbDataModule,
    UTKFaceDataModule,
    WikiDataModule,
)
from mtl.data.datamodules.synthetic import SyntheticDataModule, SyntheticSource

__all__ = [
    "DATAMODULES",
    "AdienceDataModule",
    "CachedDataModule",
    "CelebADataModule",
    "FaceDataModule",
    "Fer2013DataModule",
    "Genki4kDataModule",
    "ImdbDataModule",
    "MultiSourceDataModule",
    "SourceData",
    "SyntheticDataModule",
    "SyntheticSource",
    "UTKFaceDataModule",
    "WikiDataModule",
]

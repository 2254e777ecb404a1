"""Face data: the batch contract, the base DataModule and the data sources."""

from mtl.data.datamodule import FaceDataModule
from mtl.data.datamodules import (
    AdienceDataModule,
    CelebADataModule,
    Fer2013DataModule,
    Genki4kDataModule,
    ImdbDataModule,
    UTKFaceDataModule,
    WikiDataModule,
)
from mtl.data.dataset import FaceArrayDataset
from mtl.data.multisource import MultiSourceDataModule
from mtl.data.synthetic import SyntheticDataModule, SyntheticSource

__all__ = [
    "AdienceDataModule",
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

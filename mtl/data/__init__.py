"""Face data: the batch contract, the base DataModule and the data sources."""

from mtl.data.datamodule import FaceDataModule
from mtl.data.dataset import FaceArrayDataset
from mtl.data.synthetic import SyntheticDataModule, SyntheticSource

__all__ = ["FaceArrayDataset", "FaceDataModule", "SyntheticDataModule", "SyntheticSource"]

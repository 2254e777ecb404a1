"""Networks: backbones, per-task heads and the multi-task network that joins them."""

from mtl.models.backbones import Backbone, BKNet, MBKNet
from mtl.models.heads import BranchHead, HeadConfig
from mtl.models.network import MultiTaskNet

__all__ = ["Backbone", "BKNet", "MBKNet", "BranchHead", "HeadConfig", "MultiTaskNet"]

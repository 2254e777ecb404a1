"""Backbones: shared trunks mapping B x C x H x W images to B x num_features."""

from mtl.models.backbones.base import BACKBONES, Backbone
from mtl.models.backbones.bknet import BKNet
from mtl.models.backbones.classic import AlexNet, KangCNN, LeNet
from mtl.models.backbones.lightweight import LightweightCNN
from mtl.models.backbones.mbknet import MBKNet
from mtl.models.backbones.resnetv2 import ResNetV2
from mtl.models.backbones.timm_backbone import TimmBackbone

__all__ = [
    "BACKBONES",
    "AlexNet",
    "BKNet",
    "Backbone",
    "KangCNN",
    "LeNet",
    "LightweightCNN",
    "MBKNet",
    "ResNetV2",
    "TimmBackbone",
]

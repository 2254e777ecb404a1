"""Every selectable backbone by a short name, as used in ``mtl models`` and sweep tables.

In configs a backbone is selected by class name (``--model.backbone=ResNetV2
--model.backbone.version=2``); these names are the same choices, spelt for tables.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from mtl.models.backbones import (
    AlexNet,
    Backbone,
    BKNet,
    KangCNN,
    LeNet,
    LightweightCNN,
    MBKNet,
    ResNetV2,
    TimmBackbone,
)

ZOO: dict[str, tuple[str, Callable[..., Backbone]]] = {
    # each factory takes the backbone's keyword options, e.g. input_size=48
    "bknet": ("BKNet (Sang & Cuong), batch norm", BKNet),
    "bknet-nobn": (
        "BKNet without batch norm (Rohani A/B)",
        partial(BKNet, batch_norm=False),
    ),
    "mbknet": ("MBKNet (Rohani C)", MBKNet),
    "resnetv2-ver1": ("ResNetV2 version=1", partial(ResNetV2, 1)),
    "resnetv2-ver2": ("ResNetV2 version=2", partial(ResNetV2, 2)),
    "lenet": ("LeNet (Kang et al.)", LeNet),
    "alexnet": ("AlexNet (Kang et al.)", AlexNet),
    "kang": ("KangCNN (Kang et al.)", KangCNN),
    "lightweight": ("LightweightCNN (after Rajababu et al.)", LightweightCNN),
    "timm:resnet18": (
        "TimmBackbone model_name=resnet18",
        partial(TimmBackbone, "resnet18"),
    ),
}

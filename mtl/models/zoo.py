"""Every selectable backbone by a short name, as used in ``mtl models`` and sweep tables.

In configs a backbone is selected by class name (``--model.backbone=ResNetV2
--model.backbone.version=2``); these names are the same choices, spelt for tables.
"""

from __future__ import annotations

from collections.abc import Callable

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
    "bknet": ("BKNet (Sang & Cuong), batch norm", lambda **kw: BKNet(**kw)),
    "bknet-nobn": (
        "BKNet without batch norm (Rohani A/B)",
        lambda **kw: BKNet(batch_norm=False, **kw),
    ),
    "mbknet": ("MBKNet (Rohani C)", lambda **kw: MBKNet(**kw)),
    "resnetv2-ver1": ("ResNetV2 version=1", lambda **kw: ResNetV2(1, **kw)),
    "resnetv2-ver2": ("ResNetV2 version=2", lambda **kw: ResNetV2(2, **kw)),
    "lenet": ("LeNet (Kang et al.)", lambda **kw: LeNet(**kw)),
    "alexnet": ("AlexNet (Kang et al.)", lambda **kw: AlexNet(**kw)),
    "kang": ("KangCNN (Kang et al.)", lambda **kw: KangCNN(**kw)),
    "lightweight": ("LightweightCNN (after Rajababu et al.)", lambda **kw: LightweightCNN(**kw)),
    "timm:resnet18": (
        "TimmBackbone model_name=resnet18",
        lambda **kw: TimmBackbone("resnet18", **kw),
    ),
}

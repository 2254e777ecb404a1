"""Any timm model as a shared trunk, offline.

``timm.create_model(name, in_chans=..., num_classes=0)`` drops the classifier, so the model
returns pooled features of length ``num_features``. Nothing is downloaded: pretrained weights
come only from a local file (``pretrained_file``), which timm adapts to ``in_chans`` (e.g. an
RGB stem summed to one grayscale channel).
"""

from __future__ import annotations

from pathlib import Path

import timm
import torch

from mtl.models.backbones.base import Backbone


class TimmBackbone(Backbone, name="timm"):
    """A timm model by name, e.g. ``resnet18``, ``mobilenetv3_small_100``, ``resnetv2_50``."""

    unsaved = ("pretrained_file",)  # a trained checkpoint carries its own weights

    def __init__(
        self,
        model_name: str,
        in_chans: int = 1,
        input_size: int = 48,
        pretrained_file: str | None = None,
    ) -> None:
        """
        Args:
            model_name: any name from ``timm.list_models()``, optionally with a pretrained tag
                (``resnet18.a1_in1k``).
            in_chans: input channels (1 for grayscale faces).
            input_size: the square input side: the data's face size (a run checks it).
            pretrained_file: local weights (``.pth``/``.safetensors``) to start from; never
                downloaded.
        """
        super().__init__()
        if not timm.is_model(model_name):  # also tagged names, e.g. resnet18.a1_in1k
            raise ValueError(f"unknown timm model {model_name!r} (see timm.list_models())")
        kwargs: dict = {"in_chans": in_chans, "num_classes": 0}
        if pretrained_file is not None:
            if not Path(pretrained_file).is_file():
                raise FileNotFoundError(f"pretrained_file {pretrained_file} does not exist")
            kwargs |= {"pretrained": True, "pretrained_cfg_overlay": {"file": pretrained_file}}
        self.model = timm.create_model(model_name, **kwargs)
        self.in_chans, self.input_size = in_chans, input_size
        self.num_features = self.model.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # B x num_features (pooled, classifier removed)

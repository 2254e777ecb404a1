"""The backbone interface: a trunk that maps images to a flat feature vector."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from mtl.models.heads import HeadConfig
from mtl.models.hparams import class_path

BACKBONES: dict[str, type[Backbone]] = {}
"""Every backbone class, by its short name; each registers itself where it is defined
(``class BKNet(Backbone, name="bknet")``). :data:`mtl.models.zoo.ZOO` names presets of them."""


class Backbone(nn.Module):
    """Shared trunk of a multi-task network.

    Subclasses set ``num_features`` (length of the flat feature vector ``forward`` returns),
    ``in_chans`` and ``input_size`` (the square input side they are built for).
    ``default_init_std`` is the N(0, std) initialisation the backbone's paper prescribes for
    the whole network, or None to keep the layers' own initialisation.
    ``channels_last_default`` says whether the model runs its convolutions on NHWC tensors
    unless a run says otherwise (on where ``mtl bench train`` measured it faster).
    ``default_head`` is the branch shape its paper uses (None: the Sang & Cuong FC 256 -> FC 256
    branch).
    Designs whose tasks also get private layers on top of the shared trunk (ResNet-v2 ver2)
    return a fresh module per task from :meth:`task_trunk`.

    Every backbone remembers the arguments it was built with, so :meth:`config` names it as
    plain data (class path and arguments): a model's hyper-parameters never hold a module, and
    a checkpoint rebuilds the backbone with no config file. Arguments in ``unsaved`` (where the
    starting weights came from) are left out: the checkpoint's own weights replace them.
    """

    channels_last_default = False

    def __init_subclass__(cls, name: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name:
            taken = BACKBONES.get(name)
            if taken is not None and taken.__qualname__ != cls.__qualname__:  # not a reload
                raise ValueError(f"backbone name {name!r} taken by {taken.__name__}")
            BACKBONES[name] = cls

    def __new__(cls, *args: Any, **kwargs: Any) -> Backbone:
        backbone = super().__new__(cls)
        object.__setattr__(backbone, "_init_call", (args, kwargs))  # before nn.Module.__init__
        return backbone

    def config(self) -> dict[str, Any]:
        """``{"class_path": ..., "init_args": {...}}``: how to build this backbone again."""
        args, kwargs = self._init_call
        bound = inspect.signature(type(self).__init__).bind(self, *args, **kwargs)
        bound.apply_defaults()
        init_args: dict[str, Any] = {}
        for name, value in list(bound.arguments.items())[1:]:  # without self
            kind = bound.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_KEYWORD:
                init_args.update(value)
            elif kind is not inspect.Parameter.VAR_POSITIONAL:
                init_args[name] = value
        kept = {k: v for k, v in init_args.items() if k not in self.unsaved}
        return {"class_path": class_path(type(self)), "init_args": kept}

    default_init_std: float | None = None
    default_head: HeadConfig | None = None
    unsaved: tuple[str, ...] = ()  # arguments a checkpoint need not (or cannot) carry
    num_features: int
    in_chans: int
    input_size: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # B x C x H x W -> B x num_features
        raise NotImplementedError

    def task_trunk(self) -> nn.Module | None:
        """A new per-task module between the shared trunk and a task's branch, or None."""
        return None

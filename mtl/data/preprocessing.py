"""The preprocessing a model was trained with, as plain data that checkpoints and exported
models carry: how a face is cropped and scaled before the network sees it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import yaml

from mtl.data.faces import FaceSettings

PREPROCESSING_KEY = "mtl_preprocessing"
"""Checkpoint entry (and export metadata key) holding :meth:`Preprocessing.to_dict`."""
TASKS_KEY = "mtl_tasks"
"""Export metadata key: the task names and age edges the outputs are in."""


@dataclass(frozen=True)
class Preprocessing:
    """How a face becomes the network's input: crop it as ``face`` says (square box plus
    ``face.margin`` per side, grey if ``face.grayscale``, resized to ``face.size``), then scale
    pixels to [0, 1] (``value / 255``), channels first."""

    face: FaceSettings = FaceSettings()

    @property
    def channels(self) -> int:
        return 1 if self.face.grayscale else 3

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.face.size, self.face.size)  # C x H x W

    def to_dict(self) -> dict[str, Any]:
        return {"face": dataclasses.asdict(self.face), "scale": "value / 255", "layout": "NCHW"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(FaceSettings(**data["face"]))

    @classmethod
    def from_checkpoint(
        cls, checkpoint: dict[str, Any], input_shape: tuple[int, int, int]
    ) -> Preprocessing:
        """What the checkpoint records; for a checkpoint of an older ``mtl``, the face settings
        in its embedded run config; with neither, the default crop at the network's input
        size and channels (``input_shape``, C x H x W). A record that contradicts the network
        is refused: cropping new faces by it would feed the network the wrong input."""
        if PREPROCESSING_KEY in checkpoint:
            found = cls.from_dict(checkpoint[PREPROCESSING_KEY])
        else:
            config = yaml.safe_load(checkpoint.get("mtl_config") or "{}") or {}
            face = _find_key(config.get("data", {}), "face")
            c, size, _ = input_shape
            found = cls(FaceSettings(**face) if face else FaceSettings(size=size, grayscale=c == 1))
        if found.input_shape != tuple(input_shape):
            raise ValueError(
                f"the checkpoint's preprocessing gives {found.input_shape} faces but its network "
                f"takes {tuple(input_shape)}"
            )
        return found


def describe_input(shape: tuple[int, int, int]) -> str:
    """A C x H x W input in words for messages: ``1 x 48 x 48 (grey)``."""
    c, h, w = shape
    kind = {1: "grey", 3: "colour"}.get(c, f"{c} channels")
    return f"{c} x {h} x {w} ({kind})"


def _find_key(tree: Any, key: str) -> Any:
    """The first value of ``key`` in a nested config (depth first), else None."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        tree = list(tree.values())
    if isinstance(tree, list):
        for item in tree:
            found = _find_key(item, key)
            if found is not None:
                return found
    return None

"""Face preparation: decode an image, find the face, crop it square with a margin, grey, resize.

Detectors share one small interface, ``detect(images) -> boxes per image``:

* ``mtcnn`` — facenet-pytorch MTCNN (as in Sang & Cuong and Rajababu et al.), batched over
  equal-size images, on the GPU when one is present;
* ``haar`` — OpenCV's Viola-Jones frontal-face cascade (as in Kang et al.);
* ``none`` — the image already is a face (FER-2013, aligned UTKFace, Adience);
* ``given`` — the box the dataset ships (IMDB-WIKI ``face_location``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from mtl.data.readers.records import Box

DetectorName = Literal["auto", "mtcnn", "haar", "none", "given"]


@dataclass(frozen=True)
class FaceSettings:
    """Everything that changes a prepared face; all of it goes into the cache key.

    Args:
        detector: ``auto`` uses the dataset's default (MTCNN for raw photos, ``none`` for
            datasets of cropped faces).
        size: side of the square output in pixels (the papers use 48).
        margin: fraction of the face box's side added on each side before cropping.
        no_face: ``skip`` the image, or fall back to a ``center`` square crop.
        multi_face: keep the ``largest`` face, or ``skip`` images with several faces.
        grayscale: convert to one channel (the papers' input), else keep RGB.
    """

    detector: DetectorName = "auto"
    size: int = 48
    margin: float = 0.1
    no_face: Literal["skip", "center"] = "skip"
    multi_face: Literal["largest", "skip"] = "largest"
    grayscale: bool = True

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"size must be >= 8 pixels, got {self.size}")
        if not 0 <= self.margin <= 1:
            raise ValueError(f"margin must be in [0, 1], got {self.margin}")


class BadImage(Exception):
    """An image that cannot be used; ``reason`` is its category for the summary."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def load_rgb(path: Path | None, pixels: np.ndarray | None = None) -> np.ndarray:
    """Decode one image fully to H x W x 3 uint8, or raise :class:`BadImage` saying why."""
    if pixels is not None:
        return np.repeat(pixels[..., None], 3, axis=2)
    if path is None or not path.is_file():
        raise BadImage("missing file", str(path))
    try:
        with Image.open(path) as img:
            img.load()  # decode now: truncated files fail here, not later
            return np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise BadImage("unreadable image", f"{type(err).__name__}: {err}") from None


class Detector:
    """Finds face boxes ``(x1, y1, x2, y2)`` in RGB images; an empty list means no face.

    ``given`` holds the box each image's dataset ships, if any (only ``given`` uses it).
    A subclass implements :meth:`detect` or, if its detector scores faces, :meth:`detect_scored`
    (each defaults to the other).
    ``margin`` says whether the crop adds :attr:`FaceSettings.margin` around the box.
    """

    margin = True

    def detect(
        self, images: Sequence[np.ndarray], given: Sequence[Box | None] | None = None
    ) -> list[list[Box]]:
        return [[box for box, _ in found] for found in self.detect_scored(images, given)]

    def detect_scored(
        self, images: Sequence[np.ndarray], given: Sequence[Box | None] | None = None
    ) -> list[list[tuple[Box, float]]]:
        """Every face with the detector's confidence (NaN for detectors that give none)."""
        return [[(box, float("nan")) for box in boxes] for boxes in self.detect(images, given)]


class WholeImage(Detector):
    """``none``: the whole image is the face (no margin added)."""

    margin = False

    def detect(self, images, given=None) -> list[list[Box]]:
        return [[(0.0, 0.0, float(im.shape[1]), float(im.shape[0]))] for im in images]


class GivenBoxes(Detector):
    """``given``: the box the dataset ships (IMDB-WIKI ``face_location``); none: no face."""

    def detect(self, images, given=None) -> list[list[Box]]:
        given = given if given is not None else [None] * len(images)
        return [[box] if box else [] for box in given]


class MTCNNDetector(Detector):
    """facenet-pytorch MTCNN with its default thresholds, batched over equal-size images."""

    def __init__(self, device: str = "auto") -> None:
        import torch
        from facenet_pytorch import MTCNN

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.mtcnn = MTCNN(keep_all=True, device=device)

    def detect_scored(self, images, given=None) -> list[list[tuple[Box, float]]]:
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, im in enumerate(images):
            by_shape[im.shape].append(i)
        found: list[list[tuple[Box, float]]] = [[] for _ in images]
        for indices in by_shape.values():
            batch = np.stack([images[i] for i in indices])  # B x H x W x 3
            boxes, probs = self.mtcnn.detect(batch)
            for i, b, p in zip(indices, boxes, probs, strict=True):
                if b is not None:
                    found[i] = [
                        (tuple(map(float, r[:4])), float(q)) for r, q in zip(b, p, strict=True)
                    ]
        return found


class HaarDetector(Detector):
    """OpenCV's Viola-Jones frontal-face cascade (Kang et al.'s detector)."""

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5) -> None:
        import cv2

        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f"could not load the Haar cascade from {path}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors

    def detect(self, images, given=None) -> list[list[Box]]:
        import cv2

        found = []
        for im in images:
            grey = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
            rects = self.cascade.detectMultiScale(
                grey,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(20, 20),
            )
            found.append([(float(x), float(y), float(x + w), float(y + h)) for x, y, w, h in rects])
        return found


def make_detector(name: str, device: str = "auto") -> Detector:
    """Build the detector called ``name``."""
    if name == "mtcnn":
        return MTCNNDetector(device)
    if name == "haar":
        return HaarDetector()
    if name == "none":
        return WholeImage()
    if name == "given":
        return GivenBoxes()
    raise ValueError(f"unknown detector {name!r}; choose mtcnn, haar, none or given")


def choose_face(boxes: list[Box], settings: FaceSettings, shape: tuple[int, ...]) -> Box:
    """Pick the face to keep under the no-face / several-faces policies, or raise BadImage."""
    if not boxes:
        if settings.no_face == "center":
            side = min(shape[:2])
            x0, y0 = (shape[1] - side) / 2, (shape[0] - side) / 2
            return (x0, y0, x0 + side, y0 + side)
        raise BadImage("no face found")
    if len(boxes) > 1 and settings.multi_face == "skip":
        raise BadImage("several faces", f"{len(boxes)} faces")
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


def crop_face(rgb: np.ndarray, box: Box, settings: FaceSettings, margin: bool = True) -> np.ndarray:
    """Square crop around ``box`` (+ margin), black outside the image, grey, resized.

    Returns ``size x size`` uint8 (``size x size x 3`` when ``grayscale`` is off).
    """
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * (1 + 2 * settings.margin * margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    square = tuple(round(v) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    img = Image.fromarray(rgb)
    if settings.grayscale:
        img = img.convert("L")
    face = img.crop(square).resize((settings.size, settings.size), Image.Resampling.BILINEAR)
    return np.asarray(face)

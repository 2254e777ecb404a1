"""Photos and video -> every face's attributes: detect, crop as in training, predict, write.

:class:`Analyzer` takes frames in batches: the detector runs on the batch (MTCNN batches
frames of one size, on the GPU when there is one), every face is cropped exactly as the
model's training faces were (its :class:`~mtl.data.preprocessing.Preprocessing`), and the
predictor classifies all faces of the batch at once. Each face becomes one row: file, frame,
time, box, detector score, and per task the predicted label with its probability (JSON Lines
also carry every class's probability). :class:`RowWriter` streams rows to ``faces.csv`` and
``faces.jsonl``; :class:`Annotator` draws boxes and labels onto copies of the photos and into
one annotated video per input video.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from mtl.data.device import channels_first
from mtl.data.faces import Detector, crop_face
from mtl.inference.media import Frame, MediaFile, Problem
from mtl.inference.model import Predictor

Box = tuple[float, float, float, float]


@dataclass
class Face:
    """One detected face and the model's outputs for it."""

    box: Box
    score: float
    labels: dict[str, str | float]  # task -> class name (classification) or value (regression)
    probs: dict[str, float | None]  # task -> probability of the label (None for regression)
    all_probs: dict[str, dict[str, float]] = field(default_factory=dict)


class Analyzer:
    """Detects the faces of frame batches and predicts every task of the model for each."""

    def __init__(
        self,
        predictor: Predictor,
        detector: Detector,
        max_side: int = 1280,
        min_score: float = 0.0,
    ) -> None:
        """
        Args:
            predictor: the model (checkpoint, ensemble, ONNX, TorchScript).
            detector: finds faces in whole frames.
            max_side: frames larger than this are shrunk for detection only (faces are
                cropped from the full-resolution frame).
            min_score: drop detections under this confidence.
        """
        self.predictor, self.detector = predictor, detector
        self.settings = predictor.preprocessing.face
        self.max_side, self.min_score = max_side, min_score

    def detect(self, frames: list[Frame]) -> list[list[tuple[Box, float]]]:
        """Faces per frame, boxes in full-resolution pixels."""
        scales = [min(1.0, self.max_side / max(f.rgb.shape[:2])) for f in frames]
        images = [
            f.rgb if s == 1.0 else cv2.resize(f.rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            for f, s in zip(frames, scales, strict=True)
        ]
        found = self.detector.detect_scored(images)
        return [
            [
                (tuple(v / s for v in box), score)  # type: ignore[misc]
                for box, score in faces
                if not score < self.min_score  # NaN (no score) is kept
            ]
            for faces, s in zip(found, scales, strict=True)
        ]

    def crops(self, frames: list[Frame], found: list[list[tuple[Box, float]]]) -> np.ndarray:
        """N x C x H x W float32 in [0, 1]: every face, cropped as in training."""
        faces = [
            crop_face(frame.rgb, box, self.settings)  # H x W (grey) or H x W x 3
            for frame, boxes in zip(frames, found, strict=True)
            for box, _ in boxes
        ]
        c, h, w = self.predictor.preprocessing.input_shape
        if not faces:
            return np.zeros((0, c, h, w), np.float32)
        stack = torch.from_numpy(np.stack(faces)).float().div_(255.0)  # N x H x W (x 3)
        return np.ascontiguousarray(channels_first(stack).numpy())  # N x C x H x W

    def analyze(self, frames: list[Frame]) -> list[list[Face]]:
        """The faces of every frame of the batch with the model's outputs."""
        found = self.detect(frames)
        crops = self.crops(frames, found)
        outputs = self.predictor(crops) if len(crops) else []  # per task N x C_t or N
        results: list[list[Face]] = []
        k = 0
        for boxes in found:
            faces = []
            for box, score in boxes:
                faces.append(self._face(box, score, [out[k] for out in outputs]))
                k += 1
            results.append(faces)
        return results

    def _face(self, box: Box, score: float, outputs: list[np.ndarray]) -> Face:
        labels: dict[str, str | float] = {}
        probs: dict[str, float | None] = {}
        all_probs: dict[str, dict[str, float]] = {}
        for task, out in zip(self.predictor.tasks, outputs, strict=True):
            reading = task.kind.read(task, out)
            labels[task.name], probs[task.name] = reading.label, reading.confidence
            if reading.probabilities is not None:
                all_probs[task.name] = {c: round(p, 5) for c, p in reading.probabilities.items()}
        return Face(box, score, labels, probs, all_probs)

    def run(
        self, frames: Iterable[Frame], batch_size: int = 16
    ) -> Iterator[tuple[Frame, list[Face]]]:
        """Every frame with its faces, analysed ``batch_size`` frames at a time."""
        batch: list[Frame] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == batch_size:
                yield from zip(batch, self.analyze(batch), strict=True)
                batch = []
        if batch:
            yield from zip(batch, self.analyze(batch), strict=True)


def face_row(frame: Frame, number: int, face: Face, tasks: list[str]) -> dict[str, Any]:
    """One CSV row: where the face is, and per task the label and its probability."""
    x1, y1, x2, y2 = (round(v, 1) for v in face.box)
    row: dict[str, Any] = {
        "file": str(frame.file.path),
        "frame": frame.index,
        "time": None if frame.time is None else round(frame.time, 3),
        "face": number,
        "x1": x1,
        "y1": y1,
        "x2": x2,
        "y2": y2,
        "score": None if math.isnan(face.score) else round(face.score, 5),
    }
    for task in tasks:
        label = face.labels[task]
        row[task] = None if isinstance(label, float) and math.isnan(label) else label
        prob = face.probs[task]
        row[f"{task}_prob"] = None if prob is None else round(prob, 5)
    return row


class RowWriter:
    """Streams one row per face to ``faces.csv`` and ``faces.jsonl`` (flushed per frame, so a
    long video's rows are on disk as it goes)."""

    def __init__(self, out: Path, tasks: list[str]) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.tasks = tasks
        self.csv_file = (out / "faces.csv").open("w", newline="")
        self.jsonl_file = (out / "faces.jsonl").open("w")
        header = ["file", "frame", "time", "face", "x1", "y1", "x2", "y2", "score"]
        header += [c for t in tasks for c in (t, f"{t}_prob")]
        self.csv = csv.DictWriter(self.csv_file, fieldnames=header)
        self.csv.writeheader()
        self.rows = 0

    def write(self, frame: Frame, faces: list[Face]) -> None:
        for number, face in enumerate(faces):
            row = face_row(frame, number, face, self.tasks)
            self.csv.writerow({k: "" if v is None else v for k, v in row.items()})
            self.jsonl_file.write(json.dumps(row | {"probs": face.all_probs}) + "\n")
            self.rows += 1
        self.csv_file.flush()
        self.jsonl_file.flush()

    def close(self) -> None:
        self.csv_file.close()
        self.jsonl_file.close()


def draw(rgb: np.ndarray, faces: list[Face], min_side: int = 0) -> np.ndarray:
    """A BGR copy of the frame with every face's box and labels drawn; a frame smaller than
    ``min_side`` is enlarged first so the labels stay legible."""
    zoom = max(1.0, min_side / max(rgb.shape[:2]))
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if zoom > 1:
        bgr = cv2.resize(bgr, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
    height = bgr.shape[0]
    scale = max(0.8, max(bgr.shape[:2]) / 900)
    thick, step = max(1, round(scale * 2)), round(22 * scale) + 2
    font = cv2.FONT_HERSHEY_SIMPLEX
    for face in faces:
        x1, y1, x2, y2 = (round(v * zoom) for v in face.box)
        cv2.rectangle(bgr, (x1, y1), (x2, y2), (0, 220, 0), thick)
        lines = [
            f"{t}: {v}" + ("" if face.probs[t] is None else f" {face.probs[t]:.2f}")
            for t, v in face.labels.items()
        ]
        top = y2 if y2 + step * len(lines) < height else max(0, y1 - step * (len(lines) + 1))
        for i, text in enumerate(lines):
            at = (max(0, x1), top + step * (i + 1))
            cv2.putText(bgr, text, at, font, 0.6 * scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
            cv2.putText(bgr, text, at, font, 0.6 * scale, (0, 255, 255), thick, cv2.LINE_AA)
    return bgr


class Annotator:
    """Annotated copies under ``out/annotated/``, named like their inputs: each photo in its own
    format, each video as one MP4 (the analysed frames, at its frame rate divided by
    ``every``). A copy that cannot be written is a :class:`Problem`, not a failure."""

    def __init__(self, out: Path, every: int = 1) -> None:
        self.root = out / "annotated"
        self.every = every
        self.video: cv2.VideoWriter | None = None
        self.video_file: MediaFile | None = None
        self.size: tuple[int, ...] = ()
        self.problems: list[Problem] = []

    def add(self, frame: Frame, faces: list[Face]) -> None:
        if not frame.file.is_video:
            path = self.root / frame.file.name
            path.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(path), draw(frame.rgb, faces, min_side=640)):
                self.problems.append(Problem(str(path), None, "could not write annotated image"))
            return
        bgr = draw(frame.rgb, faces)
        if self.video_file != frame.file:
            self.close()
            self.video_file, self.size = frame.file, bgr.shape[:2]
            path = (self.root / frame.file.name).with_suffix(".mp4")
            path.parent.mkdir(parents=True, exist_ok=True)
            fps = (frame.fps or 25.0) / self.every
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self.video = cv2.VideoWriter(str(path), fourcc, fps, (bgr.shape[1], bgr.shape[0]))
            if not self.video.isOpened():
                self.problems.append(Problem(str(path), None, "could not write annotated video"))
                self.video = None
        if self.video is not None and bgr.shape[:2] == self.size:  # a frame of another size
            self.video.write(bgr)  # cannot join the video; its rows are still written

    def close(self) -> None:
        if self.video is not None:
            self.video.release()
        self.video, self.video_file = None, None

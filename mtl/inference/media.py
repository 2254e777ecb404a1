"""Photos, folders and videos as a stream of frames; what cannot be read is reported, not fatal.

A photo is one frame (index 0, no time); a video gives its frames with their index and time in
seconds (every ``every``-th frame). A frame's time is its presentation timestamp in the container,
so variable-frame-rate video (what phones record) gets true times; ``index / fps`` only where the
backend gives no timestamp. Folders are searched recursively for files with image or
video suffixes, in sorted order. Each file gets a unique output name (its path under the folder it
was found in, or its own name; a repeat gets a number), so annotated copies never collide.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtl.data.faces import BadImage, load_rgb

MAX_BAD_FRAMES = 25
"""Consecutive undecodable frames after which a video is given up."""
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


@dataclass(frozen=True)
class MediaFile:
    """One input file and the name its outputs get (relative to its folder)."""

    path: Path
    name: str

    @property
    def is_video(self) -> bool:
        return self.path.suffix.lower() in VIDEO_SUFFIXES


@dataclass
class Frame:
    """One decoded frame: RGB pixels (H x W x 3 uint8) and where it came from."""

    file: MediaFile
    index: int
    time: float | None  # seconds into the video; None for a photo
    rgb: np.ndarray
    fps: float | None = None  # the video's frame rate


@dataclass(frozen=True)
class Problem:
    """Something that could not be read: a file, or one frame of a video."""

    file: str
    frame: int | None
    reason: str


def find_media(inputs: Sequence[str | Path]) -> tuple[list[MediaFile], list[Problem]]:
    """Every media file named or found under the named folders, and the inputs that are not.
    Output names are unique: a name met again gets ``-2``, ``-3`` … before its suffix."""
    found: list[tuple[Path, str]] = []
    problems: list[Problem] = []
    for item in map(Path, inputs):
        if item.is_dir():
            for path in sorted(p for p in item.rglob("*") if p.is_file()):
                if path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                    found.append((path, str(Path(item.name) / path.relative_to(item))))
        elif item.is_file():
            found.append((item, item.name))
        else:
            problems.append(Problem(str(item), None, "no such file or folder"))
    files, taken = [], set()
    for path, name in found:
        stem, suffix, k = str(Path(name).with_suffix("")), Path(name).suffix, 1
        while name.lower() in taken:  # also a.png vs A.PNG on case-insensitive disks
            k += 1
            name = f"{stem}-{k}{suffix}"
        taken.add(name.lower())
        files.append(MediaFile(path, name))
    return files, problems


def frame_count(file: MediaFile, every: int = 1) -> int:
    """Frames :func:`read_frames` will try to give (from the video's header; photos: 1)."""
    if not file.is_video:
        return 1
    import cv2

    capture = cv2.VideoCapture(str(file.path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    capture.release()
    return max(0, (total + every - 1) // every)


def read_frames(file: MediaFile, every: int = 1) -> Iterator[Frame | Problem]:
    """The file's frames, or a :class:`Problem` for the file or for a frame that fails."""
    if not file.is_video:
        try:
            yield Frame(file, 0, None, load_rgb(file.path))
        except BadImage as err:
            yield Problem(str(file.path), None, str(err))
        return
    yield from _video_frames(file, every)


def frame_time(capture: Any, index: int, fps: float | None) -> float | None:
    """Seconds into the video of the frame ``capture`` has just read: its timestamp in the
    container (OpenCV's FFmpeg backend: the frame's presentation time from the stream's start),
    or ``index / fps`` when the backend gives none (it reports 0 for a frame after the first)."""
    import cv2

    msec = capture.get(cv2.CAP_PROP_POS_MSEC)
    if msec > 0 or (index == 0 and msec == 0):
        return msec / 1000.0
    return index / fps if fps else None


def _video_frames(file: MediaFile, every: int) -> Iterator[Frame | Problem]:
    import cv2

    capture = cv2.VideoCapture(str(file.path))
    if not capture.isOpened():
        yield Problem(str(file.path), None, "unreadable video: OpenCV cannot open it")
        return
    fps = capture.get(cv2.CAP_PROP_FPS) or None
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))  # from the header: a hint, may be off
    index = decoded = failed = 0
    try:
        # A frame that fails to decode before the header's end is reported and skipped; the
        # video ends at its real end, or after MAX_BAD_FRAMES failures in a row.
        while failed < MAX_BAD_FRAMES:
            if index % every:
                ok = capture.grab()  # skipped frame: no decode
            else:
                ok, bgr = capture.read()
                ok = ok and bgr is not None
                if ok:
                    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                    yield Frame(file, index, frame_time(capture, index, fps), rgb, fps)
                    decoded += 1
            if not ok and index >= total:
                break  # the end
            if not ok:
                yield Problem(str(file.path), index, "frame could not be decoded")
            failed = 0 if ok else failed + 1
            index += 1
    finally:
        capture.release()
    if decoded == 0:
        yield Problem(str(file.path), None, "unreadable video: no frame could be decoded")

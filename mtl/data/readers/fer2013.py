"""FER-2013 (ICML 2013 challenge): 35,887 48x48 grey faces, 7 emotions, both distributions.

* csv: ``fer2013.csv`` with columns ``emotion,pixels,Usage`` (2,304 space-separated pixels);
* image folders: ``train|test/<class>/<Usage>_<id>.jpg``.

Emotion indices follow the csv: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise,
6 neutral. Folders are mapped by *name* (alphabetical order differs). The ``Usage`` split is
kept: Training → train, PublicTest → val, PrivateTest → test.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from mtl.data.readers.base import (
    DatasetNotFound,
    Reader,
    UnreadableLabelFile,
    is_blank,
    open_text,
)
from mtl.data.readers.records import BadLabel, RawItem, Scan, class_label
from mtl.tasks import EMOTIONS

USAGE_SPLIT = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SIDE = 48
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class Fer2013Reader(Reader):
    """FER-2013 → emotion, from ``fer2013.csv`` or the image-folder layout."""

    layout: Literal["auto", "csv", "folders"] = "auto"

    name = "fer2013"
    columns = ("emotion",)
    default_detector = "none"  # already cropped faces

    def scan(self) -> Scan:
        csv_path = self.root if self.root.suffix == ".csv" else self.root / "fer2013.csv"
        layout = self.layout
        if layout == "auto":
            layout = "csv" if csv_path.is_file() else "folders"
        if layout == "csv":
            return self._scan_csv(self.require(csv_path, "fer2013.csv"))
        return self._scan_folders()

    def _scan_csv(self, path: Path) -> Scan:
        scan = Scan()
        with open_text(path) as f:
            rows = (row for row in csv.reader(f) if not is_blank(row))
            header = next(rows, [])
            columns = {name.strip(): i for i, name in enumerate(header)}
            if not {"emotion", "pixels", "Usage"} <= columns.keys():
                raise UnreadableLabelFile(f"{path}: header {header} lacks emotion,pixels,Usage")
            for number, row in enumerate(rows, start=1):
                item = f"row{number:05d}"
                try:
                    emotion, pixels, split = self._parse_row(row, columns)
                except BadLabel as err:
                    scan.reject(item, err.reason, f"csv row {number}: {err.detail}")
                    continue
                scan.keep(RawItem(item, {"emotion": emotion}, pixels=pixels, split=split))
        return scan

    @staticmethod
    def _parse_row(row: list[str], columns: dict[str, int]) -> tuple[int, np.ndarray, str]:
        if len(row) != len(columns):
            raise BadLabel("malformed csv row", f"{len(row)} fields, expected {len(columns)}")
        emotion = class_label(row[columns["emotion"]], len(EMOTIONS))
        usage = row[columns["Usage"]].strip()
        if usage not in USAGE_SPLIT:
            raise BadLabel("malformed csv row", f"unknown Usage {usage!r}")
        try:
            values = np.array(row[columns["pixels"]].split(), dtype=np.int64)
        except ValueError:
            raise BadLabel("malformed csv row", "non-numeric pixel value") from None
        if values.size != SIDE * SIDE:
            raise BadLabel("malformed csv row", f"{values.size} pixels, expected {SIDE * SIDE}")
        if values.min() < 0 or values.max() > 255:
            raise BadLabel("malformed csv row", "pixel value outside 0..255")
        return emotion, values.astype(np.uint8).reshape(SIDE, SIDE), USAGE_SPLIT[usage]

    def _scan_folders(self) -> Scan:
        scan = Scan()
        split_dirs = [d for d in ("train", "test") if (self.root / d).is_dir()]
        if not split_dirs:
            raise DatasetNotFound(
                f"fer2013: neither fer2013.csv nor train/ or test/ folders under {self.root}"
            )
        stems: Counter[str] = Counter()
        for split_dir in split_dirs:
            for class_dir in sorted(p for p in (self.root / split_dir).iterdir() if p.is_dir()):
                for path in sorted(class_dir.iterdir()):
                    if path.suffix.lower() in IMAGE_SUFFIXES:
                        self._scan_file(scan, path, class_dir.name)
                        stems[path.stem] += 1
        repeated = sorted(s for s, n in stems.items() if n > 1)
        if repeated:
            scan.notes.append(
                f"{len(repeated)} file ids appear in more than one class folder "
                f"({', '.join(repeated[:5])}); each file is kept with its own folder's label"
            )
        return scan

    def _scan_file(self, scan: Scan, path: Path, class_name: str) -> None:
        item = path.relative_to(self.root).as_posix()
        if class_name.lower() not in EMOTIONS:
            scan.reject(item, "unknown class folder", f"{class_name!r} is not one of {EMOTIONS}")
            return
        usage = path.stem.split("_", 1)[0]
        if usage not in USAGE_SPLIT:
            scan.reject(item, "unparsable file name", "expected <Usage>_<id>")
            return
        labels = {"emotion": EMOTIONS.index(class_name.lower())}
        scan.keep(RawItem(item, labels, path=path, split=USAGE_SPLIT[usage]))

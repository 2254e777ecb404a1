"""UTKFace (aligned & cropped): 200x200 faces labelled by file name.

``<age>_<gender>_<race>_<date&time>.jpg.chip.jpg`` with gender **0 male, 1 female** (converted
here to the project's 0 female / 1 male). Three files of the dataset lack the race field
(``<age>_<gender>_<date&time>``); age and gender are still read from them, and race is unused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtl.data.readers.base import Reader
from mtl.data.readers.records import BadLabel, RawItem, Scan, check_age, class_label

UTK_MALE, UTK_FEMALE = 0, 1
SUFFIXES = (".jpg.chip.jpg", ".jpg")


@dataclass
class UTKFaceReader(Reader):
    """UTKFace → gender, age (years)."""

    name = "utkface"
    columns = ("gender", "age")
    default_detector = "none"  # aligned & cropped faces

    def scan(self) -> Scan:
        folder = self.root / "UTKFace" if (self.root / "UTKFace").is_dir() else self.root
        self.require(folder, "UTKFace image folder")
        scan = Scan()
        without_race = 0
        for path in sorted(folder.iterdir()):
            if not path.name.lower().endswith(".jpg"):
                continue
            fields = _stem(path).split("_")
            if len(fields) not in (3, 4) or not fields[0].isdigit():
                scan.reject(path.name, "unparsable file name", "expected age_gender_race_date")
                continue
            without_race += len(fields) == 3
            scan.keep(self._item(scan, path, fields[0], fields[1]))
        if without_race:
            scan.notes.append(f"{without_race} file names lack the race field (age/gender read)")
        return scan

    @staticmethod
    def _item(scan: Scan, path: Path, age: str, gender: str) -> RawItem:
        labels: dict[str, float] = {}
        try:
            labels["age"] = check_age(float(age))
        except BadLabel as err:
            scan.drop(path.name, err.reason, err.detail)
        try:
            labels["gender"] = 1 - class_label(gender, 2)  # UTK 0 male -> project 1 male
        except BadLabel as err:
            scan.drop(path.name, err.reason, f"gender {err.detail}")
        return RawItem(path.name, labels, path=path)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem

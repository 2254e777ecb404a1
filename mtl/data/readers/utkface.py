"""UTKFace (aligned & cropped): 200x200 faces labelled by file name.

``<age>_<gender>_<race>_<date&time>.jpg.chip.jpg`` with gender **0 male, 1 female** (converted
here to the project's 0 female / 1 male) and race 0-4 (:data:`mtl.tasks.RACES`), read only to
report metrics per subgroup. Three files of the dataset lack the race field
(``<age>_<gender>_<date&time>``); age and gender are still read from them, race is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtl.data.readers.base import Reader
from mtl.data.readers.records import BadLabel, RawItem, Scan, check_age, class_label
from mtl.tasks import RACES

UTK_MALE, UTK_FEMALE = 0, 1
SUFFIXES = (".jpg.chip.jpg", ".jpg")


@dataclass
class UTKFaceReader(Reader):
    """UTKFace → gender, age (years); race for metrics per subgroup."""

    name = "utkface"
    columns = ("gender", "age", "race")
    version = "2"  # 2: race read
    default_detector = "none"  # aligned & cropped faces

    def scan(self) -> Scan:
        folder = self.root / "UTKFace" if (self.root / "UTKFace").is_dir() else self.root
        self.require(folder, "UTKFace image folder")
        scan = Scan()
        without_race = bad_race = 0
        for path in sorted(folder.iterdir()):
            if not path.name.lower().endswith(".jpg"):
                continue
            fields = _stem(path).split("_")
            if len(fields) not in (3, 4) or not fields[0].isdigit():
                scan.reject(path.name, "unparsable file name", "expected age_gender_race_date")
                continue
            without_race += len(fields) == 3
            race = _race(fields[2]) if len(fields) == 4 else None
            bad_race += len(fields) == 4 and race is None
            scan.keep(self._item(scan, path, fields[0], fields[1], race))
        if without_race:
            scan.notes.append(f"{without_race} file names lack the race field (age/gender read)")
        if bad_race:
            scan.notes.append(f"{bad_race} file names have a race outside 0-4 (race unknown)")
        return scan

    @staticmethod
    def _item(scan: Scan, path: Path, age: str, gender: str, race: int | None) -> RawItem:
        labels: dict[str, float] = {}
        try:
            labels["age"] = check_age(float(age))
        except BadLabel as err:
            scan.drop(path.name, err.reason, err.detail)
        try:
            labels["gender"] = 1 - class_label(gender, 2)  # UTK 0 male -> project 1 male
        except BadLabel as err:
            scan.drop(path.name, err.reason, f"gender {err.detail}")
        if race is not None and labels:  # race alone is no usable label: it only describes
            labels["race"] = race
        return RawItem(path.name, labels, path=path)


def _race(field: str) -> int | None:
    """The race index, or None when the field is not one (the face still counts for its
    tasks: race only describes it)."""
    try:
        return class_label(field, len(RACES))
    except BadLabel:
        return None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem

"""IMDB and WIKI from IMDB-WIKI (Rothe et al.): celebrity photos with gender and date of birth.

``imdb.mat`` / ``wiki.mat`` hold one struct with per-image arrays: ``dob`` (MATLAB datenum),
``photo_taken`` (year), ``full_path``, ``gender`` (**1 male, 0 female, NaN unknown**),
``face_location`` (x1, y1, x2, y2), ``face_score`` (−inf when no face was found) and
``second_face_score`` (NaN when there is no second face), and who is shown: ``celeb_id`` (IMDB)
or ``name`` (WIKI). Age is the dataset authors' rule: whole years from the date of birth to
1 July of ``photo_taken``. The usual cleaning filters are options; each filtered item is
reported with the filter that removed it. Each item's group is the person, so that splits and
folds never put one person's photos on both sides (:mod:`mtl.data.splits`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, ClassVar

import numpy as np

from mtl.data.readers.base import Reader
from mtl.data.readers.records import BadLabel, RawItem, Scan, check_age

MATLAB_EPOCH_OFFSET = 366  # datenum 1 is 1 Jan of year 0; Python's ordinal 1 is 1 Jan of year 1


def datenum_to_date(datenum: float) -> date:
    """Convert a MATLAB datenum to a date (raises ValueError when out of range)."""
    return date.fromordinal(int(datenum) - MATLAB_EPOCH_OFFSET) + timedelta(days=datenum % 1)


def age_at_photo(dob: float, photo_taken: int) -> float:
    """Whole years from birth to 1 July of the year the photo was taken."""
    born = datenum_to_date(dob)
    mid_year = date(int(photo_taken), 7, 1)
    return float(
        mid_year.year - born.year - ((mid_year.month, mid_year.day) < (born.month, born.day))
    )


@dataclass
class ImdbWikiReader(Reader):
    """Base of the IMDB and WIKI readers → gender, age (years)."""

    min_face_score: float = 1.0
    require_single_face: bool = True
    min_age: float = 0.0
    max_age: float = 100.0
    require_gender: bool = True

    key: ClassVar[str] = ""
    columns = ("gender", "age")
    default_detector = "mtcnn"

    def scan(self) -> Scan:
        from scipy.io import loadmat

        path = self.require(self.root / f"{self.key}.mat", f"{self.key}.mat")
        meta = loadmat(path, simplify_cells=True)[self.key]
        scan = Scan()
        paths = np.atleast_1d(meta["full_path"])
        people = np.atleast_1d(meta.get(self.group_field, np.full(len(paths), "")))
        if self.group_field not in meta:
            scan.notes.append(f"{self.key}.mat has no {self.group_field!r} field: splits cannot "
                              "keep each person on one side")  # fmt: skip
        for i, rel in enumerate(paths):
            row = {k: np.atleast_1d(meta[k])[i] for k in _FIELDS}
            item = self._item(scan, str(rel), row)
            if item is not None:
                item.group = _person(people[i])
                scan.keep(item)
        return scan

    def _item(self, scan: Scan, rel: str, row: dict[str, Any]) -> RawItem | None:
        reason = self._filtered(row)
        if reason:
            scan.reject(rel, *reason)
            return None
        labels: dict[str, float] = {}
        try:
            age = check_age(age_at_photo(float(row["dob"]), int(row["photo_taken"])))
            if not self.min_age <= age <= self.max_age:
                scan.reject(rel, "filtered: age outside range", f"{age:g} years")
                return None
            labels["age"] = age
        except BadLabel as err:
            scan.drop(rel, err.reason, err.detail)
        except (ValueError, OverflowError) as err:  # a datenum no calendar date matches
            scan.drop(rel, "impossible age", f"dob {row['dob']!r}: {err}")
        gender = float(row["gender"])
        if gender in (0.0, 1.0):
            labels["gender"] = int(gender)  # already 1 male / 0 female
        elif self.require_gender:
            scan.reject(rel, "unknown gender (NaN)" if np.isnan(gender) else "label out of range")
            return None
        else:
            scan.drop(rel, "unknown gender (NaN)", f"gender={gender!r}")
        box = tuple(float(v) for v in np.asarray(row["face_location"]).ravel()[:4])
        return RawItem(rel, labels, path=self.root / rel, box=box if len(box) == 4 else None)

    def _filtered(self, row: dict[str, Any]) -> tuple[str, str] | None:
        score = float(row["face_score"])
        if not np.isfinite(score):
            return "no face (face_score -inf)", ""
        if score < self.min_face_score:
            return "filtered: face score below min", f"{score:.2f} < {self.min_face_score}"
        if self.require_single_face and not np.isnan(float(row["second_face_score"])):
            return (
                "filtered: second face",
                f"second_face_score={float(row['second_face_score']):.2f}",
            )
        return None


_FIELDS = ("dob", "photo_taken", "gender", "face_location", "face_score", "second_face_score")


def _person(value: Any) -> str | None:
    """A ``celeb_id`` or ``name`` cell as a group name; None where it is empty or NaN."""
    value = value.item() if isinstance(value, np.ndarray) and value.size == 1 else value
    if isinstance(value, np.ndarray) or value is None:  # an empty MATLAB string or cell
        return None
    if isinstance(value, float):  # a MATLAB double: a whole id is written as an integer
        if np.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else str(value)
    text = str(value).strip()
    return text or None


@dataclass
class ImdbReader(ImdbWikiReader):
    """IMDB part of IMDB-WIKI (``imdb.mat``)."""

    name = "imdb"
    key = "imdb"
    group_field = "celeb_id"


@dataclass
class WikiReader(ImdbWikiReader):
    """WIKI part of IMDB-WIKI (``wiki.mat``)."""

    name = "wiki"
    key = "wiki"
    group_field = "name"

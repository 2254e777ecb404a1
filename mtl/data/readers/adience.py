"""Adience (Eidinger et al.): faces with gender and age ranges in five official folds.

``fold_{0..4}_data.txt``: tab-separated with a header (``user_id, original_image, face_id, age,
gender, …``), CRLF line ends. Images live at
``aligned/<user_id>/landmark_aligned_face.<face_id>.<original_image>`` (or the ``faces/`` layout).

Age rule (stated, since labels are ranges): a range ``(lo, hi)`` maps to its midpoint in years,
a single number to itself; the midpoints of the eight standard ranges fall into distinct default
age groups. ``None`` / empty age and ``u`` / empty gender drop that label only.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from typing import Literal

from mtl.data.readers.base import (
    DatasetNotFound,
    Reader,
    UnreadableLabelFile,
    is_blank,
    open_text,
)
from mtl.data.readers.records import BadLabel, RawItem, Scan, check_age

FOLDS = range(5)
GENDER = {"f": 0, "m": 1}
RANGE = re.compile(r"^\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
IMAGE_PATTERN = {
    "aligned": "aligned/{user_id}/landmark_aligned_face.{face_id}.{original_image}",
    "faces": "faces/{user_id}/coarse_tilt_aligned_face.{face_id}.{original_image}",
}
REQUIRED = ("user_id", "original_image", "face_id", "age", "gender")


def parse_age(text: str) -> float | None:
    """Years for an Adience age string (range midpoint), None when unknown; BadLabel if garbled."""
    text = text.strip()
    if text in ("", "None"):
        return None
    match = RANGE.match(text)
    if match:
        lo, hi = (int(g) for g in match.groups())
        if hi < lo:
            raise BadLabel("malformed label", f"age range {text!r}")
        return check_age((lo + hi) / 2)
    try:
        return check_age(float(text))
    except ValueError:
        raise BadLabel("malformed label", f"age {text!r}") from None


@dataclass
class AdienceReader(Reader):
    """Adience → gender, age (years by the midpoint rule); ``fold`` is the official fold."""

    layout: Literal["aligned", "faces"] = "aligned"

    name = "adience"
    columns = ("gender", "age")
    default_detector = "none"  # aligned faces

    def scan(self) -> Scan:
        scan = Scan()
        found = [self.find(f"fold_{k}_data.txt") for k in FOLDS]
        if not any(found):
            raise DatasetNotFound(f"adience: no fold_{{0..4}}_data.txt under {self.root}")
        for fold, path in zip(FOLDS, found, strict=True):
            if path is None:
                scan.notes.append(f"fold_{fold}_data.txt is missing; that fold is empty")
                continue
            with open_text(path) as f:
                self._scan_fold(scan, fold, list(csv.reader(f, delimiter="\t")))
        return scan

    def _scan_fold(self, scan: Scan, fold: int, rows: list[list[str]]) -> None:
        header = [h.strip() for h in rows[0]] if rows else []
        if not set(REQUIRED) <= set(header):
            raise UnreadableLabelFile(
                f"adience fold_{fold}_data.txt: header {header} lacks {REQUIRED}"
            )
        for number, row in enumerate(rows[1:], start=2):
            if is_blank(row):
                continue
            record = dict(zip(header, (c.strip() for c in row), strict=False))
            if not all(record.get(k) for k in REQUIRED[:3]) or "gender" not in record:
                scan.reject(f"fold_{fold}:line{number}", "malformed label line", repr(row[:5]))
                continue
            rel = IMAGE_PATTERN[self.layout].format(**record)
            if len(row) < len(header):  # cut short after the labels: keep it, say so
                scan.drop(rel, "truncated line (labels intact)", f"fold_{fold} line {number}")
            scan.keep(self._item(scan, rel, record, fold))

    def _item(self, scan: Scan, rel: str, record: dict[str, str], fold: int) -> RawItem:
        labels: dict[str, float] = {}
        try:
            age = parse_age(record["age"])
            if age is None:
                scan.drop(rel, "age missing")
            else:
                labels["age"] = age
        except BadLabel as err:
            scan.drop(rel, err.reason, err.detail)
        gender = record["gender"].lower()
        if gender in GENDER:
            labels["gender"] = GENDER[gender]
        else:
            scan.drop(rel, "unknown gender", f"gender={record['gender']!r}")
        return RawItem(rel, labels, path=self.root / rel, fold=fold)

"""CelebA (Liu et al.): 202,599 celebrity faces with 40 binary attributes.

``list_attr_celeba.txt``: an image count, the 40 attribute names, then ``NNNNNN.jpg`` and 40
values of ±1. ``Smiling`` and ``Male`` are found by name. ``list_eval_partition.txt`` gives the
official split (0 train, 1 val, 2 test). A header count that disagrees with the rows is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtl.data.readers.base import DatasetNotFound, Reader, UnreadableLabelFile, read_lines
from mtl.data.readers.records import RawItem, Scan

PARTITION = {"0": "train", "1": "val", "2": "test"}
ANNO_DIRS = ("", "Anno", "anno")
EVAL_DIRS = ("", "Eval", "eval")
IMAGE_DIRS = ("img_align_celeba", "Img/img_align_celeba", "")


@dataclass
class CelebAReader(Reader):
    """CelebA → smile (``Smiling``), gender (``Male``)."""

    name = "celeba"
    columns = ("smile", "gender")
    default_detector = "mtcnn"  # aligned but loosely framed 178x218 images

    def scan(self) -> Scan:
        attrs = self.find("list_attr_celeba.txt", ANNO_DIRS)
        if attrs is None:
            raise DatasetNotFound(f"celeba: list_attr_celeba.txt not found under {self.root}")
        scan = Scan()
        partition = self._partition(scan)
        images = next((self.root / d for d in IMAGE_DIRS if (self.root / d).is_dir()), self.root)
        lines = read_lines(attrs)
        if len(lines) < 2:
            raise UnreadableLabelFile(f"{attrs}: expected a count line and an attribute line")
        names = lines[1].split()
        if not {"Smiling", "Male"} <= set(names):
            raise UnreadableLabelFile(f"{attrs}: the attribute line lacks Smiling and Male")
        smiling, male = names.index("Smiling"), names.index("Male")
        rows = [line for line in lines[2:] if line.strip()]
        self._check_count(scan, lines[0], len(rows))
        for row in rows:
            self._scan_row(scan, row, len(names), (smiling, male), images, partition)
        return scan

    @staticmethod
    def _check_count(scan: Scan, first: str, actual: int) -> None:
        stated = first.strip()
        if not stated.isdigit() or int(stated) != actual:
            scan.notes.append(f"header says {stated!r} images but the file has {actual} rows")

    @staticmethod
    def _scan_row(
        scan: Scan,
        row: str,
        width: int,
        columns: tuple[int, int],
        images: Path,
        partition: dict[str, str] | None,
    ) -> None:
        fields = row.split()
        name, values = fields[0], fields[1:]
        if len(values) != width or any(v not in ("1", "-1") for v in values):
            scan.reject(
                name, "malformed label line", f"{len(values)} values, expected {width} of ±1"
            )
            return
        split = None
        if partition is not None:
            split = partition.get(name)
            if split is None:
                scan.reject(name, "no partition entry", "not in list_eval_partition.txt")
                return
        labels = {"smile": int(values[columns[0]] == "1"), "gender": int(values[columns[1]] == "1")}
        scan.keep(RawItem(name, labels, path=images / name, split=split))

    def _partition(self, scan: Scan) -> dict[str, str] | None:
        path = self.find("list_eval_partition.txt", EVAL_DIRS)
        if path is None:
            scan.notes.append("list_eval_partition.txt not found: using a seeded stratified split")
            return None
        table = {}
        for line in read_lines(path):
            fields = line.split()
            if len(fields) == 2 and fields[1] in PARTITION:
                table[fields[0]] = PARTITION[fields[1]]
        return table

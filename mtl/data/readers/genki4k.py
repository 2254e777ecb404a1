"""GENKI-4K (MPLab, UC San Diego): 4,000 uncropped photos labelled smile / non-smile.

Layout: ``files/file0001.jpg … file4000.jpg`` and ``labels.txt``, whose line N
(``smile yaw pitch roll``, angles in radians) belongs to ``fileNNNN.jpg``. Labels are joined to
files by line number, never by list position, so a missing or bad file never shifts the labels
of the files after it. The lines are sorted by class; splits are stratified (see
:mod:`mtl.data.splits`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mtl.data.readers.base import Reader, read_lines
from mtl.data.readers.records import BadLabel, RawItem, Scan, class_label


@dataclass
class Genki4kReader(Reader):
    """GENKI-4K → smile."""

    name = "genki4k"
    columns = ("smile",)
    default_detector = "mtcnn"

    def scan(self) -> Scan:
        scan = Scan()
        labels = self.require(self.root / "labels.txt", "labels.txt")
        files = self.require(self.root / "files", "files/ folder")
        present = {p.name for p in files.iterdir() if p.is_file()}
        lines = read_lines(labels)
        named = set()
        for number, line in enumerate(lines, start=1):
            name = f"file{number:04d}.jpg"
            named.add(name)
            fields = line.split()
            if len(fields) != 4:
                scan.reject(name, "malformed label line", f"line {number}: {line!r}")
                continue
            try:
                [float(f) for f in fields[1:]]
                smile = class_label(fields[0], 2)
            except (BadLabel, ValueError) as err:
                reason = getattr(err, "reason", "malformed label line")
                scan.reject(name, reason, f"line {number}: {line!r}")
                continue
            if name not in present:
                scan.reject(name, "missing file", f"labels.txt line {number} has no image")
                continue
            scan.keep(RawItem(name, {"smile": smile}, path=files / name))
        for name in sorted(present - named):
            if name.lower().endswith(".jpg"):
                scan.reject(name, "no label line", f"labels.txt has {len(lines)} lines")
        return scan

"""The reader interface: one dataset's own layout → a :class:`~mtl.data.readers.records.Scan`.

A reader knows its dataset's file layout and label encoding and nothing about faces or caches;
that keeps each dataset file short and lets ``mtl prepare`` treat every dataset the same way.

Label files are read as people save them: UTF-8 with or without a byte-order mark (Excel,
Notepad), LF or CRLF line ends (Windows), and blank lines at the end. :func:`read_lines` and
:func:`open_text` do that for every reader, so a re-saved file reads exactly like the original.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

from mtl.data.readers.records import Scan
from mtl.errors import UserError

TEXT_ENCODING = "utf-8-sig"  # UTF-8; a leading byte-order mark is dropped, not read as text


class DatasetNotFound(UserError, FileNotFoundError):
    """The dataset's files are not where ``root`` points (a wrong path is the usual cause)."""


class UnreadableLabelFile(UserError, ValueError):
    """A label file whose layout (header, columns) is not the dataset's."""


def read_lines(path: Path) -> list[str]:
    """The lines of a text label file, without line ends and without trailing blank lines.

    Blank lines *inside* the file are kept, so readers that join labels to files by line number
    (GENKI-4K) still see every line where it is.
    """
    lines = path.read_text(encoding=TEXT_ENCODING, errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def open_text(path: Path) -> IO[str]:
    """Open a csv/tsv label file for :mod:`csv` (any line ends, byte-order mark dropped)."""
    return path.open(newline="", encoding=TEXT_ENCODING, errors="replace")


def is_blank(row: list[str]) -> bool:
    """A csv row with nothing in it (an empty line, or only separators and spaces)."""
    return not any(cell.strip() for cell in row)


@dataclass
class Reader:
    """A dataset as its authors distribute it, rooted at ``root``.

    Subclasses set the class variables and implement :meth:`scan`. Their other dataclass fields
    are options (filters, layout) that change which items or labels a scan yields, so they are
    part of the cache key.
    """

    root: Path

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"  # bump when the scan's output for the same files changes
    columns: ClassVar[tuple[str, ...]] = ()  # label columns it fills (mtl.tasks.LABEL_COLUMNS)
    default_detector: ClassVar[str] = "mtcnn"  # faces still need finding in the raw images
    group_field: ClassVar[str | None] = None
    """The dataset's field naming the person in each image, if it has one: splits and folds
    keep each person's images on one side (:mod:`mtl.data.splits`)."""

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser()

    def scan(self) -> Scan:
        """Read labels and layout; never raises on a bad record (it becomes an Issue)."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The scan-changing options (every field but ``root``), for the cache key."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "root"}

    def require(self, path: Path, what: str) -> Path:
        """``path`` if it exists, else :class:`DatasetNotFound` saying what was expected."""
        if not path.exists():
            raise DatasetNotFound(f"{self.name}: {what} not found at {path} (root={self.root})")
        return path

    def find(self, filename: str, subdirs: tuple[str, ...] = ("",)) -> Path | None:
        """The first ``root/<subdir>/<filename>`` that exists, or None."""
        for sub in subdirs:
            candidate = self.root / sub / filename
            if candidate.exists():
                return candidate
        return None

"""The raw-source interface: read one dataset's own layout into a :class:`~mtl.data.records.Scan`.

A source knows its file layout and label encoding and nothing about faces or caches; that keeps
each dataset file short and lets ``mtl prepare`` treat every dataset the same way.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from mtl.data.records import Scan


@dataclass
class RawSource:
    """A dataset as its authors distribute it, rooted at ``root``.

    Subclasses set the class variables and implement :meth:`scan`. Their other dataclass fields
    are options (filters, layout) that change which items or labels a scan yields, so they are
    part of the cache key.
    """

    root: Path

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"  # bump when the scan's output for the same files changes
    tasks: ClassVar[tuple[str, ...]] = ()
    default_detector: ClassVar[str] = "mtcnn"  # faces still need finding in the raw images

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser()

    def scan(self) -> Scan:
        """Read labels and layout; never raises on a bad record (it becomes an Issue)."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The scan-changing options (every field but ``root``), for the cache key."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "root"}

    def require(self, path: Path, what: str) -> Path:
        """``path`` if it exists, else a FileNotFoundError that says what was expected."""
        if not path.exists():
            raise FileNotFoundError(f"{self.name}: {what} not found at {path} (root={self.root})")
        return path

    def find(self, filename: str, subdirs: tuple[str, ...] = ("",)) -> Path | None:
        """The first ``root/<subdir>/<filename>`` that exists, or None."""
        for sub in subdirs:
            candidate = self.root / sub / filename
            if candidate.exists():
                return candidate
        return None

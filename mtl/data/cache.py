"""The prepared-face cache: a uint8 image array, a labels table, a per-item status table and a
manifest, in one folder per (source, content key).

The key hashes the source (name, parser version, options), the face settings and a fingerprint
of the scanned items (ids, labels, splits, file sizes), so changing any preparation setting or
the raw data gives a new folder instead of silently reusing a stale one. Every file is written
to a temporary name and renamed into place; ``manifest.json`` is written last and marks the
cache complete.

Layout of ``<out>/<source>/<key12>/``::

    images.npy        N x S x S uint8 (N x S x S x 3 when not grey)
    labels.csv        row,id,split,fold,smile,emotion,gender,age   (one line per kept face)
    items.csv         id,status,reason,detail,row                  (one line per scanned item)
    label_issues.csv  id,reason,detail                             (labels dropped, item kept)
    manifest.json     source, settings, counts, timings
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from mtl.data.faces import FaceSettings
from mtl.data.records import LABEL_COLUMNS, Scan
from mtl.data.sources.base import RawSource

CACHE_FORMAT = 1  # bump when the cache layout or the cropping code changes its output
LABEL_FIELDS = ("row", "id", "split", "fold", *LABEL_COLUMNS)
DEFAULT_CACHE_DIR = Path(os.environ.get("MTL_CACHE", "~/.cache/mtl/faces")).expanduser()


def fingerprint(scan: Scan) -> str:
    """Hash of what the scan found: ids, labels, splits, folds and each file's size."""
    digest = hashlib.sha256()
    for item in scan.items:
        if item.pixels is not None:
            content = hashlib.sha256(item.pixels.tobytes()).hexdigest()
        else:
            try:
                content = str(item.path.stat().st_size)  # type: ignore[union-attr]
            except (AttributeError, OSError):  # no path, or a missing file (reported later)
                content = "-"
        labels = ",".join(f"{k}={item.labels[k]}" for k in sorted(item.labels))
        digest.update(f"{item.id}\t{labels}\t{item.split}\t{item.fold}\t{content}\n".encode())
    digest.update(f"rejected={len(scan.rejected)}".encode())
    return digest.hexdigest()


def cache_key(source: RawSource, face: FaceSettings, items_fingerprint: str) -> str:
    """Content key of a cache: changes whenever anything that shapes its contents changes."""
    spec = {
        "format": CACHE_FORMAT,
        "source": source.name,
        "version": source.version,
        "options": source.options(),
        "face": dataclasses.asdict(face),
        "items": items_fingerprint,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def cache_path(out: Path, source: RawSource, key: str) -> Path:
    return Path(out).expanduser() / source.name / key[:12]


def write_atomic(path: Path, write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Write via ``write(file)`` to a temporary name, then rename: never a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_csv(path: Path, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    def write(f: IO[Any]) -> None:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)

    write_atomic(path, write)


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, lambda f: json.dump(data, f, indent=2, default=str))


def write_npy(path: Path, array: np.ndarray) -> None:
    write_atomic(path, lambda f: np.save(f, array), binary=True)


@dataclass
class FaceCache:
    """A complete prepared cache, loaded: images plus label columns aligned with them."""

    path: Path
    manifest: dict[str, Any]
    images: np.ndarray  # N x S x S uint8
    table: dict[
        str, np.ndarray
    ]  # id, split (str); fold, smile, emotion, gender (int, -1); age (float, NaN)

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def open(cls, path: Path, mmap: bool = False) -> FaceCache:
        """Load a cache folder; raises FileNotFoundError if it is missing or incomplete."""
        path = Path(path)
        manifest_file = path / "manifest.json"
        if not manifest_file.is_file():
            raise FileNotFoundError(f"no complete face cache at {path} (manifest.json missing)")
        manifest = json.loads(manifest_file.read_text())
        images = np.load(path / "images.npy", mmap_mode="r" if mmap else None)
        table = read_labels(path / "labels.csv")
        if len(table["id"]) != len(images):
            raise ValueError(
                f"{path}: labels.csv has {len(table['id'])} rows, images {len(images)}"
            )
        return cls(path, manifest, images, table)


def read_labels(path: Path) -> dict[str, np.ndarray]:
    """Read ``labels.csv`` into columns: missing ints become -1, a missing age NaN."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    table: dict[str, np.ndarray] = {
        "id": np.array([r["id"] for r in rows], dtype=object),
        "split": np.array([r["split"] for r in rows], dtype=object),
        "fold": np.array([int(r["fold"]) if r["fold"] else -1 for r in rows], dtype=np.int64),
        "age": np.array([float(r["age"]) if r["age"] else np.nan for r in rows], dtype=np.float64),
    }
    for name in ("smile", "emotion", "gender"):
        table[name] = np.array([int(r[name]) if r[name] else -1 for r in rows], dtype=np.int64)
    return table

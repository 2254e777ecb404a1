"""The prepared-face cache: a uint8 image array, a labels table, a per-item status table and a
manifest, in one folder per (dataset, content key).

The key hashes the reader (dataset name, parser version, options), the face settings and a
fingerprint of the scanned items (ids, labels, splits, file sizes), so changing any preparation
setting or the raw data gives a new folder instead of silently reusing a stale one. Every file
is written to a temporary name and renamed into place; ``manifest.json`` is written last and
marks the cache complete. The manifest also records the size and SHA-256 of the files training
reads, so a cache damaged after it was written (a full disk, a killed copy, an edit) is found
before training, not by a numpy traceback halfway through.

Layout of ``<out>/<dataset>/<key12>/``::

    images.npy        N x S x S uint8 (N x S x S x 3 when not grey)
    labels.csv        row,id,split,fold,group,<label columns>   (one line per kept face;
                      group: the person, where the dataset names one, else empty)
    items.csv         id,status,reason,detail,row         (one line per scanned item)
    label_issues.csv  id,reason,detail                    (labels dropped, item kept)
    manifest.json     dataset, settings, counts, timings, and the checked files
    .lock             held by the process building the cache (others wait for it)
    .partial/         finished chunks of a build in progress (removed when it completes)
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
from mtl.data.readers.base import Reader
from mtl.data.readers.records import Scan
from mtl.errors import UserError
from mtl.tasks import LABEL_COLUMNS

CACHE_FORMAT = 2  # bump when the cache layout or the cropping code changes its output
LABEL_FIELDS = ("row", "id", "split", "fold", "group", *LABEL_COLUMNS)
CHECKED_FILES = ("images.npy", "labels.csv")  # what training reads; sized and hashed
DEFAULT_CACHE_DIR = Path(os.environ.get("MTL_CACHE", "~/.cache/mtl/faces")).expanduser()


class DamagedCache(UserError):
    """A complete cache whose files no longer match what its manifest recorded."""


def fingerprint(scan: Scan) -> str:
    """Hash of what the scan found: ids, labels, splits, folds, identity groups (where the
    dataset has them) and each file's size."""
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
        group = "" if item.group is None else f"\tgroup={item.group}"  # older keys unchanged
        line = f"{item.id}\t{labels}\t{item.split}\t{item.fold}\t{content}{group}\n"
        digest.update(line.encode())
    digest.update(f"rejected={len(scan.rejected)}".encode())
    return digest.hexdigest()


def cache_key(reader: Reader, face: FaceSettings, items_fingerprint: str) -> str:
    """Content key of a cache: changes whenever anything that shapes its contents changes."""
    spec = {
        "format": CACHE_FORMAT,
        "dataset": reader.name,
        "version": reader.version,
        "options": reader.options(),
        "face": dataclasses.asdict(face),
        "items": items_fingerprint,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def cache_path(out: Path, reader: Reader, key: str) -> Path:
    return Path(out).expanduser() / reader.name / key[:12]


def write_atomic(path: Path, write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Write via ``write(file)`` to a temporary name, then rename: never a half-written file.

    The temporary name is unique per process, so several processes (DDP ranks) may write the
    same file at once; the last rename wins and every version is complete.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
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


def file_record(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of a file, as the manifest records it."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 23), b""):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def verify(path: Path, manifest: dict[str, Any]) -> None:
    """Check the files training reads against the manifest; :class:`DamagedCache` if not."""
    recorded = manifest.get("files")
    if not isinstance(recorded, dict):
        raise DamagedCache(f"{path}/manifest.json records no file checksums; rebuild the cache")
    for name in CHECKED_FILES:
        file, want = path / name, recorded.get(name, {})
        if not file.is_file():
            raise DamagedCache(f"{file} is missing; rebuild the cache")
        size = file.stat().st_size
        if size != want.get("bytes"):
            problem = f"has {size:,} bytes, the manifest recorded {want.get('bytes')}"
        elif file_record(file)["sha256"] != want.get("sha256"):
            problem = "has changed since it was written (SHA-256 differs from the manifest)"
        else:
            continue
        raise DamagedCache(f"{file} {problem}; rebuild the cache")


@dataclass
class FaceCache:
    """A complete prepared cache, loaded: images plus label columns aligned with them."""

    path: Path
    manifest: dict[str, Any]
    images: np.ndarray  # N x S x S uint8
    table: dict[str, np.ndarray]  # id, split (str); fold and class columns (int, -1); values

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def open(cls, path: Path) -> FaceCache:
        """Load a verified cache folder.

        Raises FileNotFoundError if it is missing or incomplete (no manifest yet) and
        :class:`DamagedCache` if its files do not match the manifest.
        """
        path = Path(path)
        manifest_file = path / "manifest.json"
        if not manifest_file.is_file():
            raise FileNotFoundError(f"no complete face cache at {path} (manifest.json missing)")
        try:
            manifest = json.loads(manifest_file.read_text())
        except (ValueError, UnicodeDecodeError) as err:  # truncated or overwritten
            raise DamagedCache(f"{manifest_file} is unreadable ({err}); rebuild the cache") from err
        verify(path, manifest)
        images = np.load(path / "images.npy")
        table = read_labels(path / "labels.csv")
        if len(table["id"]) != len(images):
            raise DamagedCache(
                f"{path}: labels.csv has {len(table['id'])} rows, images.npy {len(images)}"
            )
        return cls(path, manifest, images, table)


def read_labels(path: Path) -> dict[str, np.ndarray]:
    """Read ``labels.csv`` into columns: a missing class becomes -1, a missing value NaN, a
    missing group "" (caches written before groups existed have no group column)."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    table: dict[str, np.ndarray] = {
        "id": np.array([r["id"] for r in rows], dtype=object),
        "split": np.array([r["split"] for r in rows], dtype=object),
        "fold": np.array([int(r["fold"]) if r["fold"] else -1 for r in rows], dtype=np.int64),
        "group": np.array([r.get("group") or "" for r in rows], dtype=object),
    }
    for name, column in LABEL_COLUMNS.items():
        if column.dtype == "class":
            values = [int(r[name]) if r.get(name) else -1 for r in rows]
            table[name] = np.array(values, dtype=np.int64)
        else:
            table[name] = np.array([float(r[name]) if r.get(name) else np.nan for r in rows])
    return table

"""``mtl prepare``: a reader's records → face cache, resumable, with progress and a summary.

Items are processed in fixed chunks of the scan order. Each finished chunk is saved under
``.partial/`` (write then rename), so an interrupted run resumes where it stopped and never
leaves a corrupt cache; the final files are assembled from the chunks and ``manifest.json`` is
written last. Decoding runs in DataLoader workers while the main process detects faces. A
complete cache that fails verification (see :func:`mtl.data.cache.verify`) is rebuilt.

Several processes may ask for the same cache at once (the trials of a sweep with several
workers, each preparing what it trains on): one builds it, holding the file lock ``.lock`` in
the cache folder (an OS lock, released when its process ends, however it ends), and the others
wait for it, then open what it built.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from mtl.data import cache as C
from mtl.data.faces import (
    BadImage,
    Detector,
    FaceSettings,
    choose_face,
    crop_face,
    load_rgb,
    make_detector,
)
from mtl.data.readers.base import Reader
from mtl.data.readers.records import RawItem, Scan, count_reasons
from mtl.tasks import LABEL_COLUMNS

KEPT, SKIPPED = "kept", "skipped"


@dataclass
class ItemResult:
    """What happened to one scanned item."""

    status: str  # kept | skipped
    reason: str = ""  # category (also set for kept items with a remark, e.g. several faces)
    detail: str = ""


class _Decode(Dataset):
    """Decodes items in DataLoader workers: (index, RGB array or None, error or None)."""

    def __init__(self, items: list[RawItem]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | None, BadImage | None]:
        item = self.items[i]
        try:
            return i, load_rgb(item.path, item.pixels), None
        except BadImage as err:
            return i, None, err


def _as_list(batch: list) -> list:
    return batch


def resolve_settings(reader: Reader, face: FaceSettings) -> FaceSettings:
    """Replace ``detector="auto"`` by the dataset's default, so the key names the real one."""
    if face.detector == "auto":
        return dataclasses.replace(face, detector=reader.default_detector)
    return face


def locate(reader: Reader, out: Path, face: FaceSettings) -> tuple[Path, Scan, FaceSettings]:
    """Scan the dataset and find the cache folder its current content and settings map to."""
    face = resolve_settings(reader, face)
    scan = reader.scan()
    key = C.cache_key(reader, face, C.fingerprint(scan))
    return C.cache_path(out, reader, key), scan, face


def open_or_discard(path: Path, console: Console) -> C.FaceCache | None:
    """The complete cache at ``path``; None if there is none, or if it was damaged (then its
    manifest is removed first, so the rebuild that follows is never mistaken for complete)."""
    if not (path / "manifest.json").is_file():
        return None
    try:
        return C.FaceCache.open(path)
    except C.DamagedCache as err:
        console.print(f"[yellow]damaged face cache, rebuilding it:[/] {err}")
        (path / "manifest.json").unlink()
        return None


def prepare(
    reader: Reader,
    out: Path = C.DEFAULT_CACHE_DIR,
    face: FaceSettings = FaceSettings(),
    *,
    device: str = "auto",
    batch_size: int = 32,
    chunk_batches: int = 32,
    workers: int = 2,
    progress: bool = True,
    console: Console | None = None,
) -> C.FaceCache:
    """Prepare ``reader``'s dataset into a face cache under ``out`` (or reuse a complete one).

    Args:
        device: where MTCNN runs (``auto``: the GPU when one is present).
        batch_size: images per detector batch.
        chunk_batches: batches per resumable chunk.
        workers: DataLoader processes decoding images.
    """
    console = console or Console(stderr=True)
    path, scan, face = locate(reader, out, face)
    with building(path, console):  # another process may be building it: wait, then reuse
        cache = open_or_discard(path, console)
        if cache is None:
            return _build(reader, scan, face, path, console, chunk_batches, progress,
                          device=device, batch_size=batch_size, workers=workers)  # fmt: skip
    console.print(f"[green]{reader.name}: cache up to date[/] at {path}")
    return cache


@contextmanager
def building(path: Path, console: Console) -> Iterator[None]:
    """Hold the lock of the cache folder ``path``, waiting (and saying so) while another
    process holds it."""
    path.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        console.print(f"another process is preparing {path}; waiting for it")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _build(
    reader: Reader,
    scan: Scan,
    face: FaceSettings,
    path: Path,
    console: Console,
    chunk_batches: int,
    progress: bool,
    *,
    device: str,
    batch_size: int,
    workers: int,
) -> C.FaceCache:
    """Detect, crop and assemble the cache at ``path`` (its lock held), resuming saved chunks."""
    started = time.perf_counter()
    parts = path / ".partial"
    parts.mkdir(parents=True, exist_ok=True)
    chunk = batch_size * chunk_batches
    pending = [c for c in range(-(-len(scan.items) // chunk)) if not _part(parts, c).is_file()]
    detector = make_detector(face.detector, device)
    runner = _ChunkRunner(scan.items, face, detector, parts, chunk)
    done = len(scan.items) - sum(len(runner.chunk_range(c)) for c in pending)
    batches = [
        list(r[i : i + batch_size])
        for c in pending
        for r in [runner.chunk_range(c)]
        for i in range(0, len(r), batch_size)
    ]
    loader = DataLoader(
        _Decode(scan.items), batch_sampler=batches, collate_fn=_as_list, num_workers=workers
    )
    bar = tqdm(
        total=len(scan.items),
        initial=done,
        unit="img",
        desc=f"prepare {reader.name}",
        disable=not progress,
        smoothing=0.1,
    )
    for batch in loader:
        runner.process(batch)
        bar.update(len(batch))
    bar.close()
    seconds = time.perf_counter() - started
    result = _assemble(reader, scan, face, path, runner, seconds, processed=len(scan.items) - done)
    shutil.rmtree(parts, ignore_errors=True)
    print_summary(result.manifest, console)
    return result


def _part(parts: Path, c: int) -> Path:
    return parts / f"chunk{c:05d}.npz"


class _ChunkRunner:
    """Detects and crops decoded batches; saves each chunk as soon as it is complete."""

    def __init__(
        self, items: list[RawItem], face: FaceSettings, detector: Detector, parts: Path, chunk: int
    ) -> None:
        self.items, self.face, self.detector = items, face, detector
        self.parts, self.chunk = parts, chunk
        self.buffer: dict[int, tuple[np.ndarray | None, ItemResult]] = {}

    def chunk_range(self, c: int) -> range:
        return range(c * self.chunk, min((c + 1) * self.chunk, len(self.items)))

    def process(self, batch: list[tuple[int, np.ndarray | None, BadImage | None]]) -> None:
        decoded = [(i, rgb) for i, rgb, _ in batch if rgb is not None]
        for i, _, err in batch:
            if err is not None:
                self.buffer[i] = (None, ItemResult(SKIPPED, err.reason, err.detail))
        given = [self.items[i].box for i, _ in decoded]
        boxes = self.detector.detect([rgb for _, rgb in decoded], given)
        for (i, rgb), found in zip(decoded, boxes, strict=True):
            self.buffer[i] = self._crop(rgb, found)
        c = batch[-1][0] // self.chunk
        if all(i in self.buffer for i in self.chunk_range(c)):
            self._save(c)

    def _crop(self, rgb: np.ndarray, boxes: list) -> tuple[np.ndarray | None, ItemResult]:
        try:
            box = choose_face(boxes, self.face, rgb.shape)
        except BadImage as err:
            return None, ItemResult(SKIPPED, err.reason, err.detail)
        face = crop_face(rgb, box, self.face, margin=self.detector.margin)
        if not boxes:
            return face, ItemResult(KEPT, "no face found: centre crop")
        if len(boxes) > 1:
            return face, ItemResult(KEPT, "several faces: largest kept", f"{len(boxes)} faces")
        return face, ItemResult(KEPT)

    def _save(self, c: int) -> None:
        rng = self.chunk_range(c)
        shape = (self.face.size, self.face.size) + (() if self.face.grayscale else (3,))
        images = np.zeros((len(rng), *shape), dtype=np.uint8)
        status = []
        for k, i in enumerate(rng):
            face, result = self.buffer.pop(i)
            if face is not None:
                images[k] = face
            status.append((result.status, result.reason, result.detail))
        arr = np.array(status, dtype=str).reshape(len(rng), 3)
        C.write_atomic(
            _part(self.parts, c), lambda f: np.savez(f, images=images, status=arr), binary=True
        )

    def load(self, c: int) -> tuple[np.ndarray, list[ItemResult]]:
        with np.load(_part(self.parts, c)) as z:
            return z["images"], [ItemResult(*row) for row in z["status"].tolist()]


def _assemble(
    reader: Reader,
    scan: Scan,
    face: FaceSettings,
    path: Path,
    runner: _ChunkRunner,
    seconds: float,
    processed: int,
) -> C.FaceCache:
    """Join the chunks into the final cache files; the manifest goes last."""
    kept_images, label_rows, item_rows = [], [], []
    for c in range(-(-len(scan.items) // runner.chunk)):
        images, results = runner.load(c)
        for k, (i, result) in enumerate(zip(runner.chunk_range(c), results, strict=True)):
            item = scan.items[i]
            row = ""
            if result.status == KEPT:
                row = len(kept_images)
                kept_images.append(images[k])
                label_rows.append(_label_row(row, item))
            item_rows.append((item.id, result.status, result.reason, result.detail, row))
    item_rows += [(i.item, SKIPPED, i.reason, i.detail, "") for i in scan.rejected]
    shape = (face.size, face.size) + (() if face.grayscale else (3,))
    stacked = np.stack(kept_images) if kept_images else np.zeros((0, *shape), np.uint8)
    C.write_npy(path / "images.npy", stacked)
    C.write_csv(path / "labels.csv", C.LABEL_FIELDS, label_rows)
    C.write_csv(path / "items.csv", ("id", "status", "reason", "detail", "row"), item_rows)
    C.write_csv(
        path / "label_issues.csv",
        ("id", "reason", "detail"),
        ((i.item, i.reason, i.detail) for i in scan.dropped),
    )
    manifest = _manifest(reader, scan, face, item_rows, seconds, processed)
    column = C.LABEL_FIELDS.index("group")
    people = {row[column] for row in label_rows if row[column]}
    if people:  # which field kept each person on one side of splits and folds
        manifest["groups"] = {"field": reader.group_field, "kept": len(people)}
    manifest["files"] = {name: C.file_record(path / name) for name in C.CHECKED_FILES}
    C.write_json(path / "manifest.json", manifest)
    return C.FaceCache.open(path)


def _label_row(row: int, item: RawItem) -> list[Any]:
    labels = [item.labels.get(name, "") for name in LABEL_COLUMNS]
    fold = "" if item.fold is None else item.fold
    return [row, item.id, item.split or "", fold, item.group or "", *labels]


def _manifest(
    reader: Reader,
    scan: Scan,
    face: FaceSettings,
    item_rows: list[tuple],
    seconds: float,
    processed: int,
) -> dict[str, Any]:
    kept = Counter(r[2] for r in item_rows if r[1] == KEPT and r[2])
    skipped = Counter(r[2] for r in item_rows if r[1] == SKIPPED)
    return {
        "format": C.CACHE_FORMAT,
        "dataset": {
            "name": reader.name,
            "version": reader.version,
            "root": str(reader.root),
            "options": reader.options(),
        },
        "face": dataclasses.asdict(face),
        "counts": {
            "scanned": len(item_rows),
            "kept": sum(1 for r in item_rows if r[1] == KEPT),
            "skipped": dict(skipped.most_common()),
            "kept_with_remark": dict(kept.most_common()),
            "labels_dropped": count_reasons(scan.dropped),
        },
        "notes": scan.notes,
        "seconds": round(seconds, 2),
        "images_per_second": round(processed / seconds, 1) if seconds > 0 else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def print_summary(manifest: dict[str, Any], console: Console | None = None) -> None:
    """A table of kept / skipped-by-reason counts and the throughput of a prepare run."""
    console = console or Console(stderr=True)
    counts = manifest["counts"]
    table = Table(
        title=f"prepare {manifest['dataset']['name']} "
        f"({manifest['face']['detector']}, {manifest['face']['size']}px)"
    )
    table.add_column("outcome")
    table.add_column("items", justify="right")
    table.add_row("[bold]scanned", str(counts["scanned"]))
    table.add_row("[green]kept", str(counts["kept"]))
    for title, group in (
        ("kept", "kept_with_remark"),
        ("skipped", "skipped"),
        ("label dropped", "labels_dropped"),
    ):
        for reason, n in counts[group].items():
            table.add_row(f"  {title}: {reason}", str(n))
    console.print(table)
    for note in manifest["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"{manifest['seconds']} s, {manifest['images_per_second']} images/s")

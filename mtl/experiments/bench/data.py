"""``mtl bench data``: can the data pipeline feed training? Measures, per real dataset:

1. prepare throughput (images/s of ``mtl prepare`` into a fresh cache);
2. loading throughput from the cache (samples/s of augmented training batches, made as
   ``mtl fit`` makes them: the faces in memory where they fit, else the DataLoader's workers);

and the training throughput of the multi-task BKNet (samples/s of forward + backward + SGD step,
all four tasks, in the precision ``mtl fit`` chooses here).
Loading must be at least 10x training so data never starves it; the table says whether it is.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import torch

from mtl.data.datamodules import DATAMODULES, CachedDataModule
from mtl.data.transforms import Augmentation
from mtl.errors import UserError
from mtl.experiments.bench.result import BenchResult, Column, Table, verdict
from mtl.experiments.bench.train import DATASETS, Speedups, loop_throughput
from mtl.tasks import DEFAULT_TASK_NAMES
from mtl.training import precision
from mtl.training.module import MultiTaskModule

REQUIRED_RATIO = 10.0
"""Loading must be at least this many times faster than training."""


def training_throughput(batch_size: int, steps: int, warmup: int = 3) -> float:
    """Samples/s of multi-task BKNet training steps (``mtl bench train``'s bare loop, in the
    network's default memory format and the precision ``mtl fit`` chooses here) on random
    1x48x48 batches: the speed the data must keep up with."""
    module = MultiTaskModule(list(DEFAULT_TASK_NAMES))
    g = torch.Generator().manual_seed(0)
    images = torch.rand(batch_size, 1, 48, 48, generator=g)
    labels = [torch.randint(0, t.num_classes, (batch_size,), generator=g) for t in module.tasks]
    targets = torch.stack(labels, dim=1).float()  # B x T
    batch = (images, targets, torch.ones_like(targets, dtype=torch.bool))
    speedups = Speedups(
        channels_last=module.channels_last, precision=precision.choose("cpu").precision
    )
    return loop_throughput(module, [batch], speedups, steps, warmup, torch.device("cpu"))


def loading_throughput(dm: CachedDataModule, max_batches: int) -> tuple[float, int]:
    """Steady-state samples/s of the dataset's augmented training batches (first batch excluded),
    on the data path training would take."""
    dm.setup("fit")
    dm.training_data_path(torch.device("cpu"))  # as mtl fit on this CPU would choose
    samples, start = 0, None
    for i, batch in enumerate(dm.train_dataloader()):
        batch = dm.on_after_batch_transfer(batch, 0)  # in memory: indices -> augmented faces
        if i == 0:
            start = time.perf_counter()  # workers are up and the first batch is out
            continue
        samples += len(batch["image"])
        if i >= max_batches:
            break
    seconds = time.perf_counter() - start if start else float("nan")
    return samples / seconds if samples else float("nan"), samples


def find_datasets(data_root: Path, roots: dict[str, Path]) -> dict[str, Path]:
    """The datasets under ``data_root`` (each in a folder of its name, as ``mtl bench train``
    finds them) and those named in ``roots``."""
    found = {n: data_root / n for n in DATASETS if (data_root / n).is_dir()}
    unknown = set(roots) - set(DATAMODULES)
    if unknown:
        raise UserError(
            f"--roots: unknown dataset(s) {sorted(unknown)}; known: {list(DATAMODULES)}"
        )
    found |= dict(roots)
    if not found:
        raise UserError(f"no datasets found under {data_root}; pass --roots '{{NAME: ROOT}}'")
    return found


def bench_data(
    datasets: dict[str, Path],
    out: Path | None = None,
    batch_size: int = 128,
    workers: int = 2,
    max_batches: int = 200,
    train_steps: int = 20,
    device_data: bool | None = None,
) -> BenchResult:
    """Prepare (into ``out``, or a temporary folder) and load each dataset, then time
    training."""
    folder = out or Path(tempfile.mkdtemp(prefix="mtl-bench-"))
    rows = []
    try:
        for name, root in datasets.items():
            dm = DATAMODULES[name](
                root=root,
                cache_dir=folder,
                batch_size=batch_size,
                num_workers=workers,
                augmentation=Augmentation(),
                device_data=device_data,
            )
            dm.device_data_option = "--device_data"  # mtl bench's own option
            started = time.time()
            dm.prepare_data()  # builds the cache, or reuses a complete one
            cache = dm.cache
            fresh = (cache.path / "manifest.json").stat().st_mtime >= started
            load, n = loading_throughput(dm, max_batches)
            in_memory = dm.training_data_path().in_memory
            counts = cache.manifest["counts"]
            rows.append(
                {
                    "dataset": name,
                    "prepare_images_per_s": cache.manifest["images_per_second"],
                    "detector": cache.manifest["face"]["detector"],
                    "kept": counts["kept"],
                    "scanned": counts["scanned"],
                    "load_samples_per_s": round(load, 1),
                    "load_samples_timed": n,
                    "data_path": "in memory" if in_memory else f"{workers} workers",
                    "prepared_now": fresh,
                }
            )
    finally:
        if out is None:
            shutil.rmtree(folder, ignore_errors=True)
    train = training_throughput(batch_size, train_steps)
    for row in rows:
        row["ratio"] = round(row["load_samples_per_s"] / train, 1)
    columns = [
        Column("dataset", lambda r: r["dataset"], left=True),
        Column("detector", lambda r: r["detector"], left=True),
        Column("kept / scanned", lambda r: f"{r['kept']} / {r['scanned']}"),
        Column(
            "prepare img/s",
            lambda r: f"{r['prepare_images_per_s']}" + ("" if r["prepared_now"] else "*"),
        ),
        Column("data path", lambda r: r["data_path"], left=True),
        Column("load samples/s", lambda r: f"{r['load_samples_per_s']:.0f}"),
        Column("load / train", lambda r: f"{r['ratio']:.1f}x"),
        Column(f">= {REQUIRED_RATIO:g}x", lambda r: verdict(r["ratio"] >= REQUIRED_RATIO)),
    ]
    title = (
        f"data throughput vs multi-task BKNet training ({train:.0f} samples/s, "
        f"{torch.get_num_threads()} threads)"
    )
    notes = []
    if not all(r["prepared_now"] for r in rows):
        notes.append("* from the cache's manifest: prepared earlier, reused now")
    record = {"train_samples_per_s": round(train, 1), "datasets": rows}
    return BenchResult([Table(title, columns, rows)], record, notes)

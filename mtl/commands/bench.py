"""``mtl bench data``: can the data pipeline feed training? Measures, per real dataset:

1. prepare throughput (images/s of ``mtl prepare`` into a fresh cache);
2. loading throughput from the cache (samples/s through the training DataLoader, with
   augmentation, as training sees it);

and the training throughput of the multi-task BKNet (samples/s of forward + backward + SGD step,
all four tasks) on the same machine. Loading must be at least 10x training so data never starves
it; the table says whether it is.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from rich.console import Console
from rich.table import Table

from mtl.commands import COMMANDS
from mtl.data.datamodules import DATAMODULES, CachedDataModule
from mtl.data.transforms import Augmentation
from mtl.errors import UserError
from mtl.tasks import DEFAULT_TASK_NAMES

DEFAULT_FOLDERS = {"genki4k": "genki4k", "fer2013": "fer2013", "utkface": "utkface"}
REQUIRED_RATIO = 10.0
HELP = COMMANDS["bench"].help


def training_throughput(batch_size: int, steps: int, warmup: int = 3) -> float:
    """Samples/s of multi-task BKNet training steps on random 1x48x48 batches."""
    from mtl.module import MultiTaskModule

    module = MultiTaskModule(list(DEFAULT_TASK_NAMES))
    module.train()
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01, momentum=0.9, weight_decay=0.01)
    g = torch.Generator().manual_seed(0)
    batch = {
        "image": torch.rand(batch_size, 1, 48, 48, generator=g),
        "targets": torch.stack(
            [torch.randint(0, t.num_classes, (batch_size,), generator=g) for t in module.tasks],
            dim=1,
        ).float(),  # B x T
    }
    batch["mask"] = torch.ones_like(batch["targets"], dtype=torch.bool)
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        optimizer.zero_grad()
        loss = module.weighting(module.task_losses(module(batch["image"]), batch))
        loss.backward()
        optimizer.step()
    return steps * batch_size / (time.perf_counter() - start)


def loading_throughput(dm: CachedDataModule, max_batches: int) -> tuple[float, int]:
    """Steady-state samples/s of the dataset's augmented training loader (first batch excluded)."""
    dm.setup("fit")
    samples, start = 0, None
    for i, batch in enumerate(dm.train_dataloader()):
        if i == 0:
            start = time.perf_counter()  # workers are up and the first batch is out
            continue
        samples += len(batch["image"])
        if i >= max_batches:
            break
    seconds = time.perf_counter() - start if start else float("nan")
    return samples / seconds if samples else float("nan"), samples


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="mtl bench", description=HELP)
    benches = parser.add_subcommands(metavar="BENCH")
    data = ArgumentParser(description=__doc__)
    data.add_argument("-c", "--config", action=ActionConfigFile, help="options from a file")
    data.add_argument(
        "--data_root",
        type=Path,
        default=Path("../shared/data"),
        help="folder holding genki4k/, fer2013/, utkface/ (those present are used)",
    )
    data.add_argument(
        "--roots",
        type=dict[str, Path],
        default={},
        help="more datasets to bench, by name, e.g. '{adience: /data/adience}'",
    )
    data.add_argument(
        "--out", type=Path | None, default=None, help="cache folder to keep (default: temp)"
    )
    data.add_argument("--batch_size", type=int, default=128)
    data.add_argument("--workers", type=int, default=2, help="DataLoader workers for loading")
    data.add_argument("--max_batches", type=int, default=200, help="loader batches to time")
    data.add_argument("--train_steps", type=int, default=20)
    data.add_argument("--json", type=Path | None, default=None, help="also write results here")
    benches.add_subcommand("data", data, help="prepare, loading and training throughput")
    return parser


def _datasets(args: Namespace) -> dict[str, Path]:
    found = {
        n: args.data_root / f for n, f in DEFAULT_FOLDERS.items() if (args.data_root / f).is_dir()
    }
    unknown = set(args.roots) - set(DATAMODULES)
    if unknown:
        raise UserError(
            f"--roots: unknown dataset(s) {sorted(unknown)}; known: {list(DATAMODULES)}"
        )
    return found | dict(args.roots)


def main(argv: list[str]) -> int:
    config = build_parser().parse_args(argv)
    args = config[config.subcommand]
    console = Console(stderr=True)
    datasets = _datasets(args)
    if not datasets:
        raise UserError(f"no datasets found under {args.data_root}; pass --roots '{{NAME: ROOT}}'")
    out = args.out or Path(tempfile.mkdtemp(prefix="mtl-bench-"))
    rows = []
    try:
        for name, root in datasets.items():
            dm = DATAMODULES[name](
                root=root,
                cache_dir=out,
                batch_size=args.batch_size,
                num_workers=args.workers,
                augmentation=Augmentation(),
            )
            started = time.time()
            dm.prepare_data()  # builds the cache, or reuses a complete one
            cache = dm.cache
            fresh = (cache.path / "manifest.json").stat().st_mtime >= started
            load, n = loading_throughput(dm, args.max_batches)
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
                    "prepared_now": fresh,
                }
            )
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)
    train = training_throughput(args.batch_size, args.train_steps)
    _report(rows, train, console, args.json)
    return 0


def _report(rows: list[dict], train: float, console: Console, json_path: Path | None) -> None:
    table = Table(
        title=f"data throughput vs multi-task BKNet training ({train:.0f} samples/s, "
        f"{torch.get_num_threads()} threads)"
    )
    for col in (
        "dataset",
        "detector",
        "kept / scanned",
        "prepare img/s",
        "load samples/s",
        "load / train",
        f">= {REQUIRED_RATIO:g}x",
    ):
        table.add_column(col, justify="left" if col in ("dataset", "detector") else "right")
    for r in rows:
        r["ratio"] = round(r["load_samples_per_s"] / train, 1)
        ok = r["ratio"] >= REQUIRED_RATIO
        table.add_row(
            r["dataset"],
            r["detector"],
            f"{r['kept']} / {r['scanned']}",
            f"{r['prepare_images_per_s']}" + ("" if r["prepared_now"] else "*"),
            f"{r['load_samples_per_s']:.0f}",
            f"{r['ratio']:.1f}x",
            "[green]yes" if ok else "[red]NO",
        )
    console.print(table)
    if not all(r["prepared_now"] for r in rows):
        console.print("* from the cache's manifest: prepared earlier, reused now")
    if json_path:
        json_path.write_text(
            json.dumps({"train_samples_per_s": round(train, 1), "datasets": rows}, indent=2)
        )

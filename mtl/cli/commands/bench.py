"""``mtl bench data|train|infer``.

``train`` and ``infer`` are described in :mod:`mtl.experiments.bench.train` and
:mod:`mtl.experiments.bench.infer`. ``data``: can the data pipeline feed training? Measures, per
real dataset:

1. prepare throughput (images/s of ``mtl prepare`` into a fresh cache);
2. loading throughput from the cache (samples/s through the training DataLoader, with
   augmentation, as training sees it);

and the training throughput of the multi-task BKNet (samples/s of forward + backward + SGD step,
all four tasks, in the precision ``mtl fit`` chooses here).
Loading must be at least 10x training so data never starves it; the table says whether it is.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from jsonargparse import ActionConfigFile, Namespace
from jsonargparse.typing import PositiveInt
from rich.console import Console
from rich.table import Table

from mtl.cli.commands import COMMANDS
from mtl.cli.parsing import ArgumentParser
from mtl.data.cache import DEFAULT_CACHE_DIR
from mtl.data.datamodules import DATAMODULES, CachedDataModule, MultiSourceDataModule
from mtl.data.transforms import Augmentation
from mtl.errors import UserError
from mtl.experiments.bench import train as train_benchmark
from mtl.experiments.bench.train import (
    Speedups,
    bare_throughput,
    framework_throughput,
    loop_throughput,
    real_datamodules,
)
from mtl.tasks import DEFAULT_TASK_NAMES
from mtl.training import precision
from mtl.training.module import MultiTaskModule

DEFAULT_FOLDERS = {"genki4k": "genki4k", "fer2013": "fer2013", "utkface": "utkface"}
REQUIRED_RATIO = 10.0
HELP = COMMANDS["bench"].help


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
    benches.add_subcommand("train", train_parser(), help="framework vs bare PyTorch loop, img/s")
    benches.add_subcommand(
        "infer", infer_parser(), help="eager, compiled, ONNX Runtime, end to end"
    )
    return parser


def train_parser() -> ArgumentParser:
    parser = ArgumentParser(description=train_benchmark.__doc__)
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="options from a file")
    parser.add_argument("--data_root", type=Path, default=Path("../shared/data"))
    parser.add_argument(
        "--caches",
        type=dict[str, Path],
        default={},
        help="prepared cache folders by dataset, used instead of raw data: "
        "'{genki4k: ~/.cache/mtl/faces/genki4k/KEY, …}'",
    )
    parser.add_argument("--cache_dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--steps", type=PositiveInt, default=60, help="timed steps per side")
    parser.add_argument("--warmup", type=PositiveInt, default=10, help="untimed steps first")
    parser.add_argument("--workers", type=int, default=2, help="framework DataLoader workers")
    parser.add_argument("--accelerator", type=str, default="auto", help="auto, cpu, gpu")
    parser.add_argument(
        "--device_data",
        type=bool | None,
        default=None,
        help="framework faces on the device, augmented there (default: on a GPU only)",
    )
    parser.add_argument(
        "--variants",
        type=list[str],
        default=["channels_last", "channels_last+bf16"],
        help="speed-ups to compare, each on both sides: eager, or '+'-joined channels_last, "
        "compile, bf16, fp16 (e.g. '[eager, channels_last, compile, channels_last+bf16]'); "
        "default: mtl fit's two precisions for Multi-task BKNet (channels_last, fp32 and bf16)",
    )
    parser.add_argument(
        "--rounds", type=PositiveInt, default=1, help="alternate bare/framework; report medians"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path | None, default=None, help="also write results here")
    return parser


def infer_parser() -> ArgumentParser:
    from mtl.experiments.bench import infer

    parser = ArgumentParser(description=infer.__doc__)
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="options from a file")
    parser.add_argument(
        "--checkpoint", type=Path | None, default=None, help="default: a fresh Multi-task BKNet"
    )
    parser.add_argument("--device", type=str, default="auto")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--repeats", type=PositiveInt, default=20, help="timed batches per mode")
    parser.add_argument("--compile", type=bool, default=True, help="also time torch.compile")
    parser.add_argument("--onnx", type=bool, default=True, help="also time ONNX Runtime (CPU)")
    parser.add_argument("--precision", type=str, default="32-true", help="or bf16-mixed, 16-mixed")
    parser.add_argument("--channels_last", type=bool, default=False)
    parser.add_argument(
        "--photos",
        type=Path | None,
        default=Path("../shared/data/genki4k/files"),
        help="folder of photos for the end-to-end figure (null: skip it)",
    )
    parser.add_argument("--max_photos", type=int, default=200)
    parser.add_argument("--json", type=Path | None, default=None, help="also write results here")
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
    if config.subcommand == "train":
        return bench_train(args, console)
    if config.subcommand == "infer":
        return bench_infer(args, console)
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


TRAIN_REQUIRED = 0.95
"""The framework must train at no less than this fraction of the bare loop's images/s."""


def parse_variant(text: str) -> Speedups:
    """``channels_last+compile+bf16`` -> Speedups (``eager``: none)."""
    parts = set(text.split("+")) - {"eager", ""}
    unknown = parts - {"channels_last", "compile", "bf16", "fp16"}
    if unknown:
        raise UserError(f"--variants: unknown speed-up(s) {sorted(unknown)} in {text!r}")
    precision = "bf16-mixed" if "bf16" in parts else "16-mixed" if "fp16" in parts else "32-true"
    return Speedups("channels_last" in parts, "compile" in parts, precision)


def bench_train(args: Namespace, console: Console) -> int:
    variants = [parse_variant(v) for v in args.variants]
    gpu = args.accelerator == "gpu" or (args.accelerator == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if gpu else "cpu")
    device_data = gpu if args.device_data is None else args.device_data
    rows = []
    for speedups in variants:
        dm = MultiSourceDataModule(
            real_datamodules(args.data_root, args.caches, args.cache_dir),
            batch_size=args.batch_size,
            num_workers=0 if device_data else args.workers,
            seed=args.seed,
            device_data=device_data,
        )
        dm.prepare_data()
        bares, frameworks = [], []
        for r in range(args.rounds):  # alternated, so a drift of the machine hits both sides
            console.print(f"[bold]{speedups.label}[/] round {r + 1}/{args.rounds}: bare loop …")
            bares.append(bare_throughput(dm, speedups, args.steps, args.warmup, device, args.seed))
            console.print(f"[bold]{speedups.label}[/] round {r + 1}: framework (Lightning) …")
            frameworks.append(
                framework_throughput(
                    dm, speedups, args.steps, args.warmup, "gpu" if gpu else "cpu", args.seed
                )
            )
        framework, bare = statistics.median(frameworks), statistics.median(bares)
        rows.append(
            {
                "variant": speedups.label,
                "framework_images_per_s": round(framework, 1),
                "bare_images_per_s": round(bare, 1),
                "ratio": round(framework / bare, 3),
                "rounds": {
                    "framework": [round(v, 1) for v in frameworks],
                    "bare": [round(v, 1) for v in bares],
                },
            }
        )
    sources = ", ".join(dm.source_names)
    where = torch.cuda.get_device_name() if gpu else f"CPU, {torch.get_num_threads()} threads"
    table = Table(
        title=f"mtl bench train: Multi-task BKNet, batch {args.batch_size}, {args.steps} timed "
        f"steps per side (median of {args.rounds}), {where}; framework data: {sources}"
        + (" (on the device)" if device_data else f" ({args.workers} workers)")
    )
    chosen = precision.choose("gpu" if gpu else "cpu")
    for col in ("speed-ups", "framework img/s", "bare loop img/s", "framework / bare", "≥ 0.95"):
        table.add_column(col, justify="left" if col == "speed-ups" else "right")
    table.add_column("mtl fit's precision here")
    for r, speedups in zip(rows, variants, strict=True):
        ok = r["ratio"] >= TRAIN_REQUIRED
        r["default_precision_here"] = speedups.precision == chosen.precision
        table.add_row(
            r["variant"],
            f"{r['framework_images_per_s']:.0f}",
            f"{r['bare_images_per_s']:.0f}",
            f"{r['ratio']:.2f}",
            "[green]yes" if ok else "[red]NO",
            "yes" if r["default_precision_here"] else "",
        )
    console.print(table)
    console.print(f"mtl fit's default precision here: {chosen.precision} ({chosen.reason})")
    if args.json:
        result = {
            "device": where,
            "batch_size": args.batch_size,
            "steps": args.steps,
            "device_data": device_data,
            "workers": 0 if device_data else args.workers,
            "default_precision": {"precision": chosen.precision, "reason": chosen.reason},
            "sources": dm.source_names,
            "results": rows,
        }
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def bench_infer(args: Namespace, console: Console) -> int:
    from mtl.experiments.bench.common import PAPERS
    from mtl.experiments.bench.infer import end_to_end, fresh_net, onnx_mode, torch_modes
    from mtl.inference.media import IMAGE_SUFFIXES
    from mtl.inference.model import TorchPredictor, load_checkpoint_net, resolve_device

    device = torch.device(resolve_device(args.device))
    if args.checkpoint:
        net, preprocessing = load_checkpoint_net(args.checkpoint)
    else:
        net, preprocessing = fresh_net()
    results = torch_modes(
        net,
        preprocessing.input_shape,
        device,
        args.batch_size,
        args.repeats,
        args.compile,
        args.precision,
        args.channels_last,
    )
    notes = []
    if args.onnx:
        onnx = onnx_mode(net, preprocessing, args.batch_size, args.repeats)
        if isinstance(onnx, str):
            notes.append(f"ONNX Runtime not measured: {onnx}")
        else:
            results.append(onnx)
    e2e = None
    if args.photos is not None:
        photos = sorted(p for p in args.photos.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if photos:
            predictor = TorchPredictor(net.to(device), preprocessing, str(device))
            e2e = end_to_end(predictor, photos[: args.max_photos], str(device))
        else:
            notes.append(f"end to end not measured: no photos in {args.photos}")
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else (f"CPU, {torch.get_num_threads()} threads")
    )
    table = Table(title=f"mtl bench infer: {args.checkpoint or 'Multi-task BKNet'}, {where}")
    for col in ("mode", "batch", "images/s", "1-image latency"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for r in results:
        table.add_row(r.mode, str(r.batch), f"{r.images_per_s:,.0f}", f"{r.latency_ms:.2f} ms")
    if e2e:
        fps = e2e["frames_per_s"]
        table.add_row("end to end: photo → MTCNN → model", "16 frames", f"{fps:.1f} fps", "-")
    console.print(table)
    papers = Table(title="beside the papers")
    for col in ("paper's figure", "here"):
        papers.add_column(col)
    eager = results[0]
    papers.add_row(
        PAPERS["sang_cuong"],
        f"{eager.latency_ms:.2f} ms per face, {eager.images_per_s:,.0f} faces/s batched "
        f"({eager.mode})",
    )
    if e2e:
        papers.add_row(PAPERS["rohani"], f"{e2e['frames_per_s']:.1f} frames/s, photo to attributes")
    console.print(papers)
    for note in notes:
        console.print(f"[yellow]{note}")
    if args.json:
        result = {
            "device": where,
            "model": str(args.checkpoint or "Multi-task BKNet (fresh)"),
            "results": [vars(r) for r in results],
            "end_to_end": e2e,
            "papers": PAPERS,
        }
        args.json.write_text(json.dumps(result, indent=2))
    return 0

"""``mtl bench data|train|overhead|infer``: the benchmarks of :mod:`mtl.experiments.bench`
(``data``, ``train``, ``overhead``, ``infer``), their options, and their results shown and
written by one renderer."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from jsonargparse import ActionConfigFile
from jsonargparse.typing import PositiveInt
from rich.console import Console

from mtl.cli.commands import COMMANDS
from mtl.cli.parsing import ArgumentParser
from mtl.data.cache import DEFAULT_CACHE_DIR
from mtl.experiments.bench import data as data_benchmark
from mtl.experiments.bench import train as train_benchmark
from mtl.experiments.bench.result import BenchResult, show

HELP = COMMANDS["bench"].help


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="mtl bench", description=HELP)
    benches = parser.add_subcommands(metavar="BENCH")
    data = ArgumentParser(description=data_benchmark.__doc__)
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
    data.add_argument(
        "--device_data",
        type=bool | None,
        default=None,
        help="faces in memory, batches augmented there (default: as mtl fit chooses)",
    )
    data.add_argument("--max_batches", type=int, default=200, help="loader batches to time")
    data.add_argument("--train_steps", type=int, default=20)
    data.add_argument("--json", type=Path | None, default=None, help="also write results here")
    benches.add_subcommand("data", data, help="prepare, loading and training throughput")
    benches.add_subcommand("train", train_parser(), help="framework vs bare PyTorch loop, img/s")
    benches.add_subcommand(
        "overhead", overhead_parser(), help="host ms per step: framework vs bare loop, tiny net"
    )
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
        help="framework faces in the device's memory, augmented there (default: as mtl fit "
        "chooses, wherever they fit)",
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


def overhead_parser() -> ArgumentParser:
    from mtl.experiments.bench import overhead

    parser = ArgumentParser(description=overhead.__doc__)
    parser.add_argument("-c", "--config", action=ActionConfigFile, help="options from a file")
    parser.add_argument(
        "--steps", type=PositiveInt, default=500, help="timed steps per side and round"
    )
    parser.add_argument("--warmup", type=PositiveInt, default=100, help="untimed steps first")
    parser.add_argument("--batch_size", type=PositiveInt, default=4)
    parser.add_argument(
        "--rounds",
        type=PositiveInt,
        default=11,
        help="alternate the sides; each side's quietest round counts",
    )
    parser.add_argument(
        "--threads",
        type=PositiveInt,
        default=1,
        help="torch threads (1: the thread's CPU time is measured; more: wall time)",
    )
    parser.add_argument(
        "--weightings",
        type=list[str],
        default=["fixed"],
        help="framework rows, one per weighting (e.g. '[fixed, uncertainty, dwa]')",
    )
    parser.add_argument(
        "--compile",
        type=bool | Literal["net", "step"],
        default=False,
        help="the framework's model.compile (true/net: the network; step: the whole step)",
    )
    parser.add_argument(
        "--bare_update",
        type=Literal["torch", "framework"],
        default="torch",
        help="the bare sides' SGD update: torch's default, or the framework's (fused)",
    )
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


def main(argv: list[str]) -> int:
    config = build_parser().parse_args(argv)
    args = config[config.subcommand]
    console = Console(stderr=True)
    result: BenchResult
    if config.subcommand == "train":
        result = train_benchmark.bench_train(
            [train_benchmark.parse_variant(v) for v in args.variants],
            args.data_root, args.caches, args.cache_dir, args.batch_size, args.steps,
            args.warmup, args.workers, args.accelerator, args.device_data, args.rounds,
            args.seed, echo=console.print,
        )  # fmt: skip
    elif config.subcommand == "overhead":
        from mtl.experiments.bench.overhead import bench_overhead

        result = bench_overhead(
            args.steps, args.warmup, args.batch_size, args.rounds, args.threads,
            args.weightings, args.compile, args.bare_update, echo=console.print,
        )  # fmt: skip
    elif config.subcommand == "infer":
        from mtl.experiments.bench.infer import bench_infer

        result = bench_infer(
            args.checkpoint, args.device, args.batch_size, args.repeats, args.compile,
            args.onnx, args.precision, args.channels_last, args.photos, args.max_photos,
        )  # fmt: skip
    else:
        datasets = data_benchmark.find_datasets(args.data_root, args.roots)
        result = data_benchmark.bench_data(
            datasets, args.out, args.batch_size, args.workers, args.max_batches,
            args.train_steps, args.device_data,
        )  # fmt: skip
    show(result, console, args.json)
    return 0

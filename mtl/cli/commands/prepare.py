"""``mtl prepare <dataset> --root RAW``: build a dataset's face cache.

Every dataset is a sub-command; its reader's options (IMDB-WIKI filters, FER-2013 layout …) and
the face settings (``--face.detector``, ``--face.size`` …) are the same typed options, with the
same names, as the DataModule's in ``mtl fit`` (``--data.face.detector``); ``--config`` reads
them from a file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from jsonargparse import ActionConfigFile
from rich.console import Console

from mtl.cli.commands import COMMANDS
from mtl.cli.parsing import ArgumentParser
from mtl.data.cache import DEFAULT_CACHE_DIR
from mtl.data.faces import FaceSettings
from mtl.data.prepare import prepare
from mtl.data.readers import READERS

HELP = COMMANDS["prepare"].help


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="mtl prepare", description=HELP)
    datasets = parser.add_subcommands(metavar="DATASET")
    for name, cls in READERS.items():
        doc = (cls.__doc__ or name).strip().splitlines()[0]
        sub = ArgumentParser(description=f"{HELP} {doc}")
        sub.add_argument("-c", "--config", action=ActionConfigFile, help="options from a file")
        sub.add_class_arguments(cls, nested_key=None, as_group=True)
        sub.add_class_arguments(FaceSettings, "face")
        run = sub.add_argument_group("run (not part of the cache key)")
        run.add_argument("--out", type=Path, default=DEFAULT_CACHE_DIR, help="cache folder")
        run.add_argument("--device", type=str, default="auto", help="MTCNN device (auto: GPU)")
        run.add_argument("--workers", type=int, default=2, help="image-decoding processes")
        run.add_argument("--batch_size", type=int, default=32, help="images per detector batch")
        run.add_argument("--progress", type=bool, default=True, help="show a progress bar")
        datasets.add_subcommand(name, sub, help=doc)
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    config = parser.parse_args(argv)
    name = config.subcommand
    options = parser.instantiate(config)[name]
    cls = READERS[name]
    reader = cls(**{f.name: options[f.name] for f in dataclasses.fields(cls)})
    console = Console(stderr=True)
    cache = prepare(
        reader,
        options.out,
        options.face,
        device=options.device,
        workers=options.workers,
        batch_size=options.batch_size,
        progress=options.progress,
        console=console,
    )
    console.print(f"cache: {cache.path}")
    return 0

"""``mtl prepare <source> --root RAW --out CACHE``: build a source's face cache.

Every dataset is a sub-command; its own options (IMDB-WIKI filters, FER-2013 layout …) are
generated from its dataclass fields, and the face settings from :class:`FaceSettings`.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any

from rich.console import Console

from mtl.data.cache import DEFAULT_CACHE_DIR
from mtl.data.faces import FaceSettings
from mtl.data.prepare import prepare
from mtl.data.sources import SOURCES


def add_dataclass_options(
    parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()
) -> None:
    """One ``--option`` per dataclass field, typed from its annotation, default from the field."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind = hints[field.name]
        flag = "--" + field.name.replace("_", "-")
        kwargs: dict[str, Any] = {"default": field.default, "dest": field.name}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is typing.Literal:
            kwargs["choices"] = typing.get_args(kind)
        else:
            kwargs["type"] = kind
        parser.add_argument(flag, help=f"(default: {field.default})", **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtl prepare",
        description="Detect, crop, grey and resize the faces of a raw dataset into a cache.",
    )
    subs = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    for name, cls in SOURCES.items():
        sub = subs.add_parser(name, help=(cls.__doc__ or "").strip().splitlines()[0])
        sub.add_argument(
            "--root", type=Path, required=True, help="the dataset folder as distributed"
        )
        sub.add_argument("--out", type=Path, default=DEFAULT_CACHE_DIR, help="cache folder")
        add_dataclass_options(sub.add_argument_group("source options"), cls, skip=("root",))
        add_dataclass_options(sub.add_argument_group("face settings"), FaceSettings)
        run = sub.add_argument_group("run (not part of the cache key)")
        run.add_argument("--device", default="auto", help="MTCNN device (auto: GPU if present)")
        run.add_argument("--workers", type=int, default=2, help="image-decoding processes")
        run.add_argument("--batch-size", type=int, default=32, help="images per detector batch")
        run.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str]) -> int:
    args = vars(build_parser().parse_args(argv))
    cls = SOURCES[args.pop("source")]
    source_opts = {f.name: args.pop(f.name) for f in dataclasses.fields(cls) if f.name != "root"}
    face = FaceSettings(**{f.name: args.pop(f.name) for f in dataclasses.fields(FaceSettings)})
    console = Console(stderr=True)
    try:
        source = cls(root=args["root"], **source_opts)
        cache = prepare(
            source,
            args["out"],
            face,
            device=args["device"],
            workers=args["workers"],
            batch_size=args["batch_size"],
            progress=not args["no_progress"],
            console=console,
        )
    except (FileNotFoundError, ValueError) as err:
        console.print(f"[red]mtl prepare {cls.name}: {err}")
        return 2
    console.print(f"cache: {cache.path}")
    return 0
